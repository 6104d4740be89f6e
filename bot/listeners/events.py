"""Messages that talk to the agent: @mentions in channels, replies in its threads, and DMs.

In a channel, mention the bot to start; in a thread the bot already works in, a plain reply
continues (a reply that mentions the bot arrives as ``app_mention`` and is handled there once).
Slack retries deliveries, so each event is claimed in PostgreSQL before it is handled.

Slack's text encoding is undone once, when a claimed event is answered (`bot.turns`): the
agent reads ``Tom & Jerry <3``, not ``Tom &amp; Jerry &lt;3``; people and channels stay
``<@U…>`` and ``<#C…|name>`` so their ids reach tools. The Slack tools encode once on the way out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.failures import explain
from bot.limits import admit_turn
from bot.turns import Turns, event_thread, strip_mention

__all__ = ["claim", "is_for_agent", "is_from_person", "register", "strip_mention", "thread_of"]

log = logging.getLogger(__name__)

thread_of = event_thread


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


async def claim(turns: Turns, body: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Whether to answer this delivery: an event for the agent, claimed (first seen, or its
    first handler died); False for a retry of one being handled, or one not for us."""
    event = body.get("event")
    event_id = body.get("event_id")
    if not isinstance(event, dict) or not isinstance(event_id, str):
        return False
    if not await is_for_agent(turns, event, context.bot_user_id, body.get("team_id")):
        return False
    try:
        return await turns.claim_event(event_id, body)
    except Exception as error:
        log.exception("could not record event %s", event_id)
        await turns.say(thread_of(event, body.get("team_id") or event.get("team")), explain(error))
        return False


async def is_for_agent(
    turns: Turns, event: dict[str, Any], bot_user_id: str | None, team_id: Any
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
        return await turns.is_conversation(thread.thread_id)
    except Exception:  # unknown whether the thread is ours: better silent than spam
        log.warning("could not tell whether %s is a conversation", thread.thread_id, exc_info=True)
        return False


def register(app: AsyncApp, turns: Turns) -> None:
    async def claimed_first(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> None:
        """Listener middleware, so it runs before Bolt acknowledges the event."""
        claiming = asyncio.ensure_future(claim(turns, body, context))
        await asyncio.wait({claiming}, timeout=CLAIM_BEFORE_ACK_SECONDS)
        context["claimed"] = claiming
        await next()

    async def on_event(body: dict[str, Any], context: AsyncBoltContext) -> None:
        claiming = context.get("claimed")
        if not isinstance(claiming, asyncio.Future) or not await claiming:
            return
        if await admit_turn(turns, body, context):  # bot.limits: refused ones are answered there
            await turns.respond(body, context.bot_user_id)

    app.event("app_mention", middleware=[claimed_first])(on_event)
    app.event("message", middleware=[claimed_first])(on_event)
