"""The review buttons. Each acknowledges first (Slack allows 3 s), then acts; Edit and Feedback
open their modal straight away because the click's ``trigger_id`` lives only 3 s."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks import APPROVE, EDIT, FEEDBACK, parse_button_value
from bot.review.clicks import Clicks
from bot.review.effects import Click
from bot.review.vocabulary import ModalKind
from graph import Approve

log = logging.getLogger(__name__)


def click_from(body: dict[str, Any], action: dict[str, Any]) -> Click | None:
    """Read who clicked what where; None for a payload that lacks the essentials."""

    def obj(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    user = obj(body.get("user")).get("id")
    value = action.get("value")
    if not isinstance(user, str) or not isinstance(value, str) or len(value) > 120:
        return None
    ref, shown_version = parse_button_value(value)
    if not ref or len(ref) > 100:
        return None
    container = obj(body.get("container"))
    channel = container.get("channel_id") or obj(body.get("channel")).get("id")
    message_ts = container.get("message_ts")
    return Click(
        user=user,
        ref=ref,
        channel_id=channel if isinstance(channel, str) else None,
        message_ts=message_ts if isinstance(message_ts, str) else None,
        shown_version=shown_version,
    )


def register(app: AsyncApp, clicks: Clicks) -> None:
    @app.action(APPROVE)
    async def approve(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        click = click_from(body, action)
        if click is None:
            log.warning("ignored a malformed Approve click")
            return
        await clicks.decide(click, Approve(click.user))

    async def open_modal(body: dict[str, Any], action: dict[str, Any], kind: ModalKind) -> None:
        click = click_from(body, action)
        trigger = body.get("trigger_id")
        if click is None or not isinstance(trigger, str):
            log.warning("ignored a malformed %s click", kind)
            return
        await clicks.open_modal(click, trigger, kind)

    @app.action(EDIT)
    async def edit(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        await open_modal(body, action, "edit")

    @app.action(FEEDBACK)
    async def feedback(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        await open_modal(body, action, "feedback")
