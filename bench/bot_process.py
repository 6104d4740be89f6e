"""The bot under test, in its own process: ``python -m bench.bot_process``.

The real ``running_bot`` and ``http_app`` under uvicorn on loopback, with the instant model and
the no-op tool. Configured by environment (``BENCH_DATABASE_URL``, ``BENCH_SLACK_API_URL``,
``BENCH_SIGNING_SECRET``, ``BENCH_POOL_SIZE``; ``BENCH_PROFILE=<file>`` writes a cProfile of
the whole run there); prints ``READY <port>`` once it listens and
stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import uvicorn

from bench.fakes import InstantModel, bench_registry
from bot.config import BotSettings
from bot.limits import TurnLimits
from bot.server import http_app, run_fast, running_bot
from bot.transport.linger import LingeringHttpToolsProtocol
from graph import AgentSettings
from graph.remote import RemoteSettings

BOT_TOKEN = "xoxb-bench"


def settings_from_env() -> BotSettings:
    return BotSettings(
        bot_token=BOT_TOKEN,
        signing_secret=os.environ["BENCH_SIGNING_SECRET"],
        api_url=os.environ["BENCH_SLACK_API_URL"],
        host="127.0.0.1",
        agent=AgentSettings(
            database_url=os.environ["BENCH_DATABASE_URL"],
            pool_max_size=int(os.environ.get("BENCH_POOL_SIZE", "20")),
        ),
        turn_limits=TurnLimits.unlimited(),  # the load is one simulated person, on purpose
        remote=RemoteSettings(url=os.environ["BENCH_AGENT_URL"], assistant="agent")
        if os.environ.get("BENCH_AGENT_URL")
        else None,
    )


async def serve() -> None:
    settings = settings_from_env()
    async with running_bot(settings, model=InstantModel(), registry=bench_registry()) as bot:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        server = uvicorn.Server(
            uvicorn.Config(
                http_app(bot),
                log_level="warning",
                lifespan="off",
                access_log=False,
                backlog=2048,
                http=LingeringHttpToolsProtocol,
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        print(f"READY {sock.getsockname()[1]}", flush=True)
        await task


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))
    profile_path = os.environ.get("BENCH_PROFILE")
    if not profile_path:
        with contextlib.suppress(KeyboardInterrupt):  # how the benchmark stops it
            run_fast(serve())
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_fast(serve())
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)


if __name__ == "__main__":
    main()
