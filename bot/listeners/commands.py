"""Slash commands: ``/approvals`` lists the reviews waiting for whoever typed it.

The answer is ephemeral (only the asker sees it) and goes through the command's
``response_url``, which works in any channel or DM, including ones the bot is not in, where
``chat.postEphemeral`` would fail. Slack allows 3 s for the ack, so the ack comes first and the
database is read afterwards.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import home
from bot.failures import explain
from bot.waiting import WaitingLister

log = logging.getLogger(__name__)

APPROVALS = "/approvals"


async def approvals_answer(lister: WaitingLister, user: str) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and blocks of the answer; a failure becomes one plain sentence."""
    try:
        waiting = await lister.waiting_for(user)
        return home.approvals_message(
            waiting, now=datetime.now(UTC), workspace_url=await lister.workspace_url()
        )
    except Exception as error:
        log.exception("could not list the reviews waiting for %s", user)
        text = explain(error)
        return text, [{"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}]


def register(app: AsyncApp, lister: WaitingLister) -> None:
    @app.command(APPROVALS)
    async def approvals(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user = body.get("user_id")
        if not isinstance(user, str) or not user:
            log.warning("ignored %s without a user", APPROVALS)
            return
        text, blocks = await approvals_answer(lister, user)
        try:
            await respond(text=text, blocks=blocks, response_type="ephemeral")
        except Exception:
            log.exception("answering %s for %s failed", APPROVALS, user)
