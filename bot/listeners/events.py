"""Messages that talk to the agent: @mentions in channels, replies in its threads, and DMs.

In a channel, mention the bot to start; in a thread the bot already works in, a plain reply
continues (a reply that mentions the bot arrives as ``app_mention`` and is handled there once).
Slack retries deliveries, so each event is claimed in PostgreSQL before it is handled.

Slack's text encoding is undone here, once (`bot.mrkdwn.decode_incoming`): the agent reads
``Tom & Jerry <3``, not ``Tom &amp; Jerry &lt;3``; people and channels stay ``<@U…>`` and
``<#C…|name>`` so their ids reach tools. The Slack tools encode once on the way out.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.flow import ReviewFlow, explain
from bot.limits import admit_turn
from bot.mrkdwn import decode_incoming
from bot.threads import SlackThread

log = logging.getLogger(__name__)


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text)
    return text.strip()


def thread_of(event: dict[str, Any], team_id: str | None) -> SlackThread:
    return SlackThread(team_id, event["channel"], event.get("thread_ts") or event["ts"])


def is_from_person(event: dict[str, Any]) -> bool:
    """Edits, joins, bot posts (our own included) are not someone talking to the agent; nor is
    an event missing the fields a message always has."""
    shaped = all(isinstance(event.get(k), str) and event[k] for k in ("user", "channel", "ts"))
    shaped = shaped and all(isinstance(event.get(k), str | None) for k in ("thread_ts", "text"))
    return shaped and not event.get("bot_id") and not event.get("subtype")


async def handle(
    flow: ReviewFlow, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
) -> None:
    event_id = body.get("event_id")
    thread = thread_of(event, body.get("team_id") or event.get("team"))
    if not isinstance(event_id, str):
        return
    try:
        if not await flow.store.claim_event(event_id, body):
            return  # a retry of a delivery already being handled
    except Exception as error:
        log.exception("could not record event %s", event_id)
        await flow.say(thread, explain(error))
        return
    if await admit_turn(flow, body, context):  # bot.limits: refused ones are answered there
        await respond(flow, body, context.bot_user_id)


async def respond(
    flow: ReviewFlow, body: dict[str, Any], bot_user_id: str | None, *, recovering: bool = False
) -> None:
    """Answer a claimed event, then mark it handled (the sweeper re-answers it otherwise)."""
    event = body["event"]
    thread = thread_of(event, body.get("team_id") or event.get("team"))
    text = decode_incoming(strip_mention(event.get("text") or "", bot_user_id))
    if not text.strip():
        await flow.say(thread, "Hi! Tell me what you need, and I'll ask before I act.")
    else:
        await flow.converse(thread, event["user"], text, event["ts"], recovering=recovering)
    try:
        await flow.store.finish_event(body["event_id"])
    except Exception:  # the sweeper will find it unfinished and look again (idempotently)
        log.warning("could not mark event %s handled", body["event_id"], exc_info=True)


def register(app: AsyncApp, flow: ReviewFlow) -> None:
    @app.event("app_mention")
    async def on_mention(
        body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if is_from_person(event):
            await handle(flow, body, event, context)

    @app.event("message")
    async def on_message(
        body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if not is_from_person(event):
            return
        if event.get("channel_type") == "im":
            await handle(flow, body, event, context)
            return
        mentioned = context.bot_user_id and f"<@{context.bot_user_id}" in (event.get("text") or "")
        if event.get("thread_ts") and not mentioned:
            thread = thread_of(event, body.get("team_id"))
            try:
                ours = await flow.store.is_conversation(thread.thread_id)
            except Exception:  # unknown whether the thread is ours: better silent than spam
                log.warning(
                    "could not tell whether %s is a conversation", thread.thread_id, exc_info=True
                )
                return
            if ours:
                await handle(flow, body, event, context)
