"""The bot under test, in its own process: ``python -m bench.bot_process``.

The real ``running_bot`` served as in production (``http_server``: the acknowledging process
in front of ``http_app`` under uvicorn) on loopback, with the instant model and the no-op tool.
Configured by environment (``BENCH_DATABASE_URL``, ``BENCH_SLACK_API_URL``,
``BENCH_SIGNING_SECRET``, ``BENCH_POOL_SIZE``, ``BENCH_ACK_PROCESS=false`` to serve without the
acknowledging process; ``BENCH_PROFILE=<file>`` writes a cProfile of the whole run there);
prints ``READY <port>`` once it listens and stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from bench.fakes import InstantModel, bench_registry
from bot.config import BotSettings
from bot.limits import TurnLimits
from bot.server import http_server, run_fast, running_bot
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
        ack_process=os.environ.get("BENCH_ACK_PROCESS", "true") != "false",
        remote=RemoteSettings(url=os.environ["BENCH_AGENT_URL"], assistant="agent")
        if os.environ.get("BENCH_AGENT_URL")
        else None,
    )


async def serve() -> None:
    """Serve as ``python -m bot`` does (``http_server``: with the acknowledging process in
    front unless ``BENCH_ACK_PROCESS=false``), on a loopback socket of its own."""
    settings = settings_from_env()
    async with running_bot(settings, model=InstantModel(), registry=bench_registry()) as bot:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        async with http_server(bot, sock=sock):
            print(f"READY {sock.getsockname()[1]}", flush=True)
            await asyncio.Event().wait()  # until SIGINT or SIGTERM


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
