"""Listeners grouped by the Slack surface they serve; each group has a ``register(app, flow)``."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.flow import ReviewFlow
from bot.listeners import actions, commands, events, home, views


def register_all(app: AsyncApp, flow: ReviewFlow) -> None:
    events.register(app, flow)
    actions.register(app, flow)
    views.register(app, flow)
    home.register(app, flow)
    commands.register(app, flow)
