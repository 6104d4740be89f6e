"""Run the bot: the agent service, the Bolt app, and its transport (HTTP or Socket Mode)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.app import build_app, slack_client
from bot.config import BotSettings
from bot.flow import ReviewFlow
from bot.permissions import Approvers
from bot.store import BOT_SCHEMA, BotStore
from graph import AgentService, open_agent
from graph.model import ChatModel
from graph.tools.registry import ToolRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bot:
    settings: BotSettings
    service: AgentService
    app: AsyncApp
    flow: ReviewFlow


@asynccontextmanager
async def running_bot(
    settings: BotSettings, *, model: ChatModel | None = None, registry: ToolRegistry | None = None
) -> AsyncIterator[Bot]:
    """Open the database (embedded unless DATABASE_URL), migrate, and wire the app.

    ``model`` and ``registry`` replace the configured ones (tests and benchmarks).
    """
    async with open_agent(
        settings.agent, extra_schema=BOT_SCHEMA, model=model, registry=registry
    ) as service:
        client = slack_client(settings)
        flow = ReviewFlow(
            service, BotStore(service.pool), client, Approvers(settings.approvers, client)
        )
        yield Bot(settings, service, build_app(settings, client, flow), flow)


def http_app(bot: Bot) -> Starlette:
    """``POST /slack/events`` for Slack; ``/healthz`` (alive) and ``/readyz`` (database)."""
    handler = AsyncSlackRequestHandler(bot.app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            async with bot.service.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as error:
            return JSONResponse(
                {"status": "unavailable", "database": str(type(error).__name__)}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


async def serve(settings: BotSettings) -> None:
    async with running_bot(settings) as bot:
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert settings.app_token is not None
            log.info("connecting to Slack in Socket Mode")
            await AsyncSocketModeHandler(bot.app, settings.app_token).start_async()  # type: ignore[no-untyped-call]
            return
        config = uvicorn.Config(
            http_app(bot),
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=False,
            lifespan="off",
        )
        log.info("listening on http://%s:%s/slack/events", settings.host, settings.port)
        await uvicorn.Server(config).serve()


def run(settings: BotSettings) -> None:
    asyncio.run(serve(settings))
