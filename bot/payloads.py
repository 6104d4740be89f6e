"""Reading Slack payloads: what a request is about (for the logs), and whether its shape is
one Bolt can read at all (refused with 400 before Bolt would raise on it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.bolt_request import parse_body
from bot.logs import set_context
from bot.threads import SlackThread

log = logging.getLogger(__name__)


def _obj(value: Any) -> dict[str, Any]:
    """A payload part that should be an object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def request_context(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The conversation (thread id) and review (ref) a Slack payload is about, when it says."""
    team = body.get("team_id") or _obj(body.get("team")).get("id")
    event = body.get("event")
    if isinstance(event, dict) and event.get("channel"):
        thread_ts = event.get("thread_ts") or event.get("ts")
        if not thread_ts:
            return None, None
        return SlackThread(team, event["channel"], thread_ts).thread_id, None
    ref: str | None = None
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        ref = actions[0].get("value") if isinstance(actions[0].get("value"), str) else None
    view = body.get("view")
    if ref is None and isinstance(view, dict) and isinstance(view.get("private_metadata"), str):
        ref = view["private_metadata"] or None
    container = _obj(body.get("container"))
    message = _obj(body.get("message"))
    channel = container.get("channel_id") or _obj(body.get("channel")).get("id")
    thread_ts = message.get("thread_ts") or container.get("thread_ts")
    thread_id = SlackThread(team, channel, thread_ts).thread_id if channel and thread_ts else None
    return thread_id, ref[:100] if ref else None


_OBJECT_PARTS = ("event", "team", "user", "channel", "container", "message", "view", "enterprise")


MAX_NESTING = 64
"""Deepest nesting of objects and lists accepted in a payload. Slack's deepest (rich text in a
message in a click) are around 15; a body nested hundreds deep makes any recursive code
downstream (encoders, copies) raise instead of answering."""


def nesting_within(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests objects and lists at most ``limit`` deep (iteratively)."""
    if not isinstance(value, dict | list):
        return True
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def well_formed(raw: bytes, content_type: str | None) -> dict[str, Any] | None:
    """The parsed body if it has the shape Bolt can read, else None (the HTTP route answers
    400: see :func:`bot.transport.http.http_app`)."""
    try:
        body: Any = parse_body(raw.decode("utf-8"), content_type)  # json.loads: any value
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError; deep nesting
        return None
    if not isinstance(body, dict) or not nesting_within(body):
        return None
    # Bolt reads ids from the body and from the event, message and previous message in it.
    nested = [body.get(k) for k in ("event", "message", "previous_message")]
    parts = [body, *(part for part in nested if isinstance(part, dict))]
    if any(not isinstance(part.get(k), dict | str | None) for part in parts for k in _OBJECT_PARTS):
        return None
    if "event" in body and not isinstance(body["event"], dict):
        return None
    authorizations = body.get("authorizations")
    if authorizations is None or (
        isinstance(authorizations, list) and all(isinstance(a, dict) for a in authorizations)
    ):
        return body
    return None


async def log_context_middleware(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
    """Name the conversation and review in every log line the request's listener writes.

    Runs after signature verification, so forged requests never reach the log this way.
    """
    thread_id, ref = request_context(body)
    set_context(thread_id=thread_id, review_ref=ref)
    kind = body.get("type") or "request"
    actions = body.get("actions")
    detail = _obj(body.get("event")).get("type") or ",".join(
        str(a.get("action_id"))
        for a in (actions if isinstance(actions, list) else [])
        if isinstance(a, dict)
    )
    log.info("slack %s %s", kind, detail or _obj(body.get("view")).get("callback_id") or "")
    await next()
