"""Slack's assistant view (``features.assistant_view`` in manifest.yml): what the app says of
itself there, and the prompts it suggests when someone opens a conversation with it.

A conversation started there is a DM thread: each message arrives as ``message.im`` with the
assistant thread's ``thread_ts``, so it is one LangGraph thread per Slack thread, exactly as a
DM thread (``bot.listeners.events``). Pure data; tests/test_manifest.py checks the manifest
says the same."""

from __future__ import annotations

from typing import Any

ASSISTANT_DESCRIPTION = "An AI agent that asks a person before every consequential action."

SUGGESTED_PROMPTS: tuple[dict[str, str], ...] = (
    {"title": "Check the weather", "message": "What's the weather in Paris?"},
    {"title": "Post to a channel", "message": 'Post "hello team" to #general'},
    {"title": "Create a channel", "message": "Create channel #launch-plan"},
    {"title": "What can you do?", "message": "What can you do?"},
)
"""At most four (Slack's limit), each a title and the message it sends: the offline planner's
phrasings, so they work in the demo too."""
PROMPTS_TITLE = "Try one of these — I'll ask before I act:"


def thread_of_started(event: dict[str, Any]) -> tuple[str, str] | None:
    """The (channel, thread_ts) of an ``assistant_thread_started`` event, or None if malformed."""
    thread = event.get("assistant_thread")
    if not isinstance(thread, dict):
        return None
    channel, ts = thread.get("channel_id"), thread.get("thread_ts")
    return (channel, ts) if isinstance(channel, str) and isinstance(ts, str) else None
