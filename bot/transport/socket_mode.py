"""The Socket Mode transport: Slack's requests over a WebSocket (no public URL), each handled in
a request scope like an HTTP one; health and metrics are still served over HTTP."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.inflight import SHUTDOWN_GRACE_SECONDS, InflightWork
from bot.transport.http import http_server

if TYPE_CHECKING:
    from bot.startup import Bot

log = logging.getLogger(__name__)


class _TrackedSocketModeHandler(AsyncSocketModeHandler):
    """Socket Mode requests get the same request scope as HTTP ones."""

    work: InflightWork

    async def handle(self, client: Any, req: SocketModeRequest) -> None:
        with self.work.request_scope():
            await super().handle(client, req)


async def serve_socket_mode(bot: Bot, stop: asyncio.Event) -> None:
    """Take Slack's requests over the WebSocket; health and metrics still answer on $PORT."""
    assert bot.settings.app_token is not None
    handler = _TrackedSocketModeHandler(bot.app, bot.settings.app_token)
    handler.work = bot.work
    async with http_server(bot, slack_events=False):
        log.info("connecting to Slack in Socket Mode")
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await stop.wait()
        bot.work.draining = True
        await handler.disconnect_async()  # type: ignore[no-untyped-call]
        log.info("disconnected from Slack")
        await bot.work.drain(SHUTDOWN_GRACE_SECONDS)
        await handler.close_async()  # type: ignore[no-untyped-call]
