"""The assistant view: a new conversation gets the suggested prompts
(``assistant.threads.setSuggestedPrompts``); a change of the channel someone looks at changes
nothing (the conversation is its thread). Both are acknowledged at once by Bolt."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.assistant_view import PROMPTS_TITLE, SUGGESTED_PROMPTS, thread_of_started

log = logging.getLogger(__name__)


async def suggest_prompts(client: AsyncWebClient, event: dict[str, Any]) -> None:
    where = thread_of_started(event)
    if where is None:
        return
    try:
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=where[0],
            thread_ts=where[1],
            title=PROMPTS_TITLE,
            prompts=[dict(p) for p in SUGGESTED_PROMPTS],
        )
    except Exception:  # a nicety: the conversation works without them
        log.warning("could not suggest prompts in %s", where[0], exc_info=True)


def register(app: AsyncApp) -> None:
    async def on_started(event: dict[str, Any], client: AsyncWebClient) -> None:
        await suggest_prompts(client, event)

    async def on_context_changed(event: dict[str, Any]) -> None:
        log.debug("assistant thread context changed: %s", event.get("assistant_thread"))

    app.event("assistant_thread_started")(on_started)
    app.event("assistant_thread_context_changed")(on_context_changed)
