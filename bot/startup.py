"""Process start-up: the composition root (:func:`running_bot` wires database pools,
migrations, the agent, the review flow and the Bolt app), signals, garbage-collector tuning and
the event loop. Transports live in :mod:`bot.transport`, in-flight work in :mod:`bot.inflight`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp

from bot import logs, metrics
from bot.app import build_app, slack_client
from bot.config import BotSettings
from bot.flow import ReviewFlow
from bot.inflight import (
    SHUTDOWN_GRACE_SECONDS,
    InflightWork,
    adopting_middleware,
    install_task_tracking,
)
from bot.limits import TurnLimiter
from bot.migrations import migrate_bot
from bot.payloads import log_context_middleware
from bot.permissions import Approvers
from bot.policy import Policy
from bot.retention import RetentionTask
from bot.store import BotStore
from bot.sweeper import run_sweeper
from bot.transport.http import serve_http
from bot.transport.socket_mode import serve_socket_mode
from graph import Agent, AgentSettings, open_agent
from graph.db import Pool, open_pool, resolve_database_url
from graph.model import ChatModel
from graph.remote import RemoteAgent, open_remote_agent
from graph.tools.registry import ToolRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bot:
    settings: BotSettings
    service: Agent
    """The agent: in process (:class:`graph.AgentService`), or on LangGraph Server
    (:class:`graph.remote.RemoteAgent`, with ``AGENT_URL``)."""
    app: AsyncApp
    flow: ReviewFlow
    pool: Pool
    """The bot's own database pool (reviews, events, audit, limits); the agent has its own."""
    work: InflightWork = field(default_factory=InflightWork)


@asynccontextmanager
async def running_bot(
    settings: BotSettings, *, model: ChatModel | None = None, registry: ToolRegistry | None = None
) -> AsyncIterator[Bot]:
    """Open the database (embedded unless DATABASE_URL), migrate, and wire the app.

    The agent and the bot each open their own pool on it and migrate their own tables.

    ``model`` and ``registry`` replace the configured ones (tests and benchmarks). On exit,
    work started by Slack requests (every listener Bolt runs, whichever transport brought the
    request: see :func:`bot.inflight.adopting_middleware`) is given
    :data:`SHUTDOWN_GRACE_SECONDS` to finish, and then cancelled, before the database pools
    close under it.
    """
    metrics.count_errors()
    install_task_tracking(asyncio.get_running_loop())
    policy = settings.load_policy()
    logs.remember_configured_secrets(policy.secrets)  # MCP servers' env and headers
    agent_settings = settings.agent_with(policy)
    url = await resolve_database_url(agent_settings.database_url, agent_settings.data_dir)
    async with (
        opened_agent(settings, agent_settings, model=model, registry=registry) as service,
        open_pool(url, max_size=agent_settings.pool_max_size) as pool,
    ):
        await migrate_bot(pool)
        check_policy_tools(settings, policy, service)
        policy = policy.with_mcp_tools(service.mcp_tools)
        policy.check_rules(service.tool_schemas)  # a typo in a rule stops the start, naming it
        policy.check_auto_rules(service.review_sources)
        session = aiohttp.ClientSession()  # one connection pool for every Web API call
        client = slack_client(settings, session)
        store = BotStore(pool, recover_after_seconds=settings.recover_after_seconds)
        flow = ReviewFlow(
            service,
            store,
            client,
            Approvers(policy, client),
            stream_replies=settings.stream_replies,
            task_cards=settings.task_cards,
        )
        await flow.router.check(policy, service.tool_names)  # says what it finds wrong
        app = build_app(settings, client, flow, TurnLimiter(pool, settings.turn_limits))
        work = InflightWork()
        app.use(adopting_middleware(work))  # whatever the transport, exit waits for listeners
        app.use(log_context_middleware)
        bot = Bot(settings, service, app, flow, pool, work)
        sweeper = (
            asyncio.create_task(
                run_sweeper(
                    flow,
                    settings.sweep_seconds,
                    settings.recover_after_seconds,
                    RetentionTask(settings.retention),
                )
            )
            if settings.sweep_seconds > 0
            else None
        )
        try:
            yield bot
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await bot.work.drain(SHUTDOWN_GRACE_SECONDS)
            await flow.cards.close()
            await session.close()


@asynccontextmanager
async def opened_agent(
    settings: BotSettings,
    agent_settings: AgentSettings,
    *,
    model: ChatModel | None = None,
    registry: ToolRegistry | None = None,
) -> AsyncIterator[Agent]:
    """The agent in process, or, with ``AGENT_URL``, the one on LangGraph Server (whose state
    lives there: only the bot's tables are in the bot's database then)."""
    if settings.remote is not None:
        logs.remember_configured_secrets([settings.remote.api_key or ""])
        async with open_remote_agent(settings.remote) as remote:
            yield remote
        return
    async with open_agent(agent_settings, model=model, registry=registry) as service:
        yield service


def check_policy_tools(settings: BotSettings, policy: Policy, agent: Agent) -> None:
    """A policy naming a tool the agent does not have stops the start. A remote agent's
    tools are not known before its graph proposes them, so that check is skipped (said in
    the log): an entry for a tool the graph never calls is simply never used. Review/auto
    modes are the remote graph's own business (a warning says they are ignored)."""
    source = str(settings.policy_file or "APPROVERS")
    if isinstance(agent, RemoteAgent):
        modes = [rule.tool for rule in policy.mode_rules(source)] + list(
            settings.agent.auto_approve
        )
        if modes:
            log.warning(
                "mode settings for %s have no effect with AGENT_URL: the graph on the agent "
                "server decides which calls it stops for",
                ", ".join(sorted(set(modes))),
            )
        if policy.tools:
            log.info(
                "%s names %s; the agent server does not list its tools, so these names are "
                "not checked at start-up",
                source,
                ", ".join(sorted(policy.tools)),
            )
        return
    policy.check_tools(agent.tool_names, source)


@contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM (orchestrators) and SIGINT (Ctrl-C) both mean: finish up and exit."""
    loop = asyncio.get_running_loop()

    def request_stop(name: str) -> None:
        if not stop.is_set():
            log.info("%s received: shutting down gracefully", name)
        stop.set()

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, request_stop, sig.name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve(settings: BotSettings) -> None:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with running_bot(settings) as bot:
            if settings.socket_mode:
                await serve_socket_mode(bot, stop)
            else:
                log.info("listening on http://%s:%s/slack/events", settings.host, settings.port)
                await serve_http(bot, stop)
    log.info("shut down cleanly")


GC_YOUNG_THRESHOLD = 10_000
"""Allocations (net) between collections of the youngest generation; Python's default is 700."""


def tune_gc() -> None:
    """Collect less often, and never re-examine what start-up created.

    A decision allocates thousands of short-lived containers (LangGraph's step machinery,
    messages, rows), almost all freed by reference counting; with Python's defaults the cyclic
    collector still ran a few hundred times per thousand approvals, and every full collection
    walked the ~150,000 objects of the loaded libraries: about 7 % of the CPU of an approval.
    Freezing moves the start-up objects out of the collector's sight (they live as long as the
    process); garbage cycles are still collected, just in larger batches.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed: the event loop is this service's hot path (every
    click is parsed, verified and acknowledged on it). For a process that runs the bot and
    nothing else: the garbage collector is tuned for it first (:func:`tune_gc`)."""
    tune_gc()
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # e.g. Windows; the standard loop works, only slower
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def run(settings: BotSettings) -> None:
    run_fast(serve(settings))
