"""Listeners grouped by the Slack surface they serve; each group has a ``register(app, part)``
taking only the part of the flow it needs (conversations, clicks, or the waiting list)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp

from bot.listeners import actions, assistant, commands, events, grants, home, views

if TYPE_CHECKING:
    from bot.flow import ReviewFlow


def register_all(app: AsyncApp, flow: ReviewFlow) -> None:
    events.register(app, flow.turns)
    actions.register(app, flow.clicks)
    views.register(app, flow.clicks)
    home.register(app, flow.lister, flow.standing)
    grants.register(app, flow.standing, flow.lister)
    commands.register(app, flow.lister)
    assistant.register(app)
