"""Messages that talk to the agent: @mentions in channels, replies in its threads, and DMs.

In a channel, mention the bot to start; in a thread the bot already works in, a plain reply
continues (a reply that mentions the bot arrives as ``app_mention`` and is handled there once).
Slack retries deliveries, so each event is claimed in PostgreSQL before it is handled.

Slack's text encoding is undone here, once (`bot.mrkdwn.decode_incoming`): the agent reads
``Tom & Jerry <3``, not ``Tom &amp; Jerry &lt;3``; people and channels stay ``<@U…>`` and
``<#C…|name>`` so their ids reach tools. The Slack tools encode once on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
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


CLAIM_BEFORE_ACK_SECONDS = 1.5
"""How long Slack's answer waits for an event's claim to be stored. Slack never resends an
event it saw acknowledged, so an event is recorded before the acknowledgement: a process killed
just after it still leaves the event on record for the sweeper. A slow database only delays
the acknowledgement this long (Slack allows 3 s); the claim then finishes in the background."""


async def claim(flow: ReviewFlow, body: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Whether to answer this delivery: an event for the agent, claimed (first seen, or its
    first handler died); False for a retry of one being handled, or one not for us."""
    event = body.get("event")
    event_id = body.get("event_id")
    if not isinstance(event, dict) or not isinstance(event_id, str):
        return False
    if not await is_for_agent(flow, event, context.bot_user_id, body.get("team_id")):
        return False
    try:
        return await flow.store.claim_event(event_id, body)
    except Exception as error:
        log.exception("could not record event %s", event_id)
        await flow.say(thread_of(event, body.get("team_id") or event.get("team")), explain(error))
        return False


async def is_for_agent(
    flow: ReviewFlow, event: dict[str, Any], bot_user_id: str | None, team_id: Any
) -> bool:
    """A person talking to the agent: a mention, a DM, or a plain reply in a thread it works
    in (a reply that mentions the bot arrives as ``app_mention`` too, and is handled there)."""
    if not is_from_person(event):
        return False
    if event.get("type") == "app_mention" or event.get("channel_type") == "im":
        return True
    mentioned = bot_user_id and f"<@{bot_user_id}" in (event.get("text") or "")
    if not event.get("thread_ts") or mentioned:
        return False
    thread = thread_of(event, team_id if isinstance(team_id, str) else None)
    try:
        return await flow.store.is_conversation(thread.thread_id)
    except Exception:  # unknown whether the thread is ours: better silent than spam
        log.warning("could not tell whether %s is a conversation", thread.thread_id, exc_info=True)
        return False


async def respond(
    flow: ReviewFlow, body: dict[str, Any], bot_user_id: str | None, *, recovering: bool = False
) -> None:
    """Answer a claimed event, then mark it handled (the sweeper re-answers it otherwise)."""
    event = body["event"]
    thread = thread_of(event, body.get("team_id") or event.get("team"))
    text = decode_incoming(strip_mention(event.get("text") or "", bot_user_id))
    async with flow.store.handling(body["event_id"]):  # a live handler is never replaced
        if not text.strip():
            await flow.say(thread, "Hi! Tell me what you need, and I'll ask before I act.")
        else:
            await flow.converse(thread, event["user"], text, event["ts"], recovering=recovering)
    try:
        await flow.store.finish_event(body["event_id"])
    except Exception:  # the sweeper will find it unfinished and look again (idempotently)
        log.warning("could not mark event %s handled", body["event_id"], exc_info=True)


def register(app: AsyncApp, flow: ReviewFlow) -> None:
    async def claimed_first(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> None:
        """Listener middleware, so it runs before Bolt acknowledges the event."""
        claiming = asyncio.ensure_future(claim(flow, body, context))
        await asyncio.wait({claiming}, timeout=CLAIM_BEFORE_ACK_SECONDS)
        context["claimed"] = claiming
        await next()

    async def on_event(body: dict[str, Any], context: AsyncBoltContext) -> None:
        claiming = context.get("claimed")
        if not isinstance(claiming, asyncio.Future) or not await claiming:
            return
        if await admit_turn(flow, body, context):  # bot.limits: refused ones are answered there
            await respond(flow, body, context.bot_user_id)

    app.event("app_mention", middleware=[claimed_first])(on_event)
    app.event("message", middleware=[claimed_first])(on_event)
