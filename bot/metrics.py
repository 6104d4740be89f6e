"""Prometheus metrics: what an operator needs to see that reviews flow and where they stall.

The series live in this module's own registry (not the client library's global one), so tests
and benchmarks can run several bots in one process without duplicate-registration errors; the
values are per process, as Prometheus expects, except ``reviews_pending`` which is read from
PostgreSQL at scrape time and therefore the same on every replica (aggregate it with ``max``).

Errors are counted by a logging handler rather than by calls sprinkled through the code: every
failure the bot handles is already logged with its exception, so counting log records at ERROR
keeps the two views consistent and cannot miss a new ``log.exception`` site.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from graph import AgentBusy, AgentUnreachable
from graph.db import Pool

__all__ = ["CONTENT_TYPE_LATEST"]

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

REVIEWS_PENDING = Gauge(
    "approval_bot_reviews_pending",
    "Reviews posted in Slack and still waiting for a decision (all replicas; from PostgreSQL).",
    registry=REGISTRY,
)
DECISIONS = Counter(
    "approval_bot_decisions",
    "Decisions people made on reviews. action: continue|update|feedback; result: applied "
    "(the agent resumed), rejected (not allowed, unknown or already decided), stale (lost a race "
    "with another click), refused (the agent declined it), failed (an error; buttons restored).",
    ["action", "result"],
    registry=REGISTRY,
)
DECISION_LATENCY = Histogram(
    "approval_bot_decision_apply_seconds",
    "From a click (or modal submit) reaching the bot to the agent having applied the decision.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
AGENT_RUNS = Histogram(
    "approval_bot_agent_run_seconds",
    "Duration of one agent run. kind: turn (a user message) or resume (after a decision).",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
ERRORS = Counter(
    "approval_bot_errors",
    "Errors the bot logged, by kind: database, busy (thread lease timeout), model, slack_api, "
    "internal (anything else with a traceback), logged (an error message without one).",
    ["kind"],
    registry=REGISTRY,
)

PENDING_QUERY = "SELECT count(*) AS n FROM slack_reviews WHERE status = 'pending'"


def decided(action: str, result: str, *, since: float | None = None) -> None:
    """Count one decision; ``since`` (a ``time.perf_counter()`` at the click) times it."""
    DECISIONS.labels(action=action, result=result).inc()
    if since is not None:
        DECISION_LATENCY.observe(time.perf_counter() - since)


@contextmanager
def agent_run(kind: str) -> Iterator[None]:
    """Time an agent run, whether it ends in a reply, a review, or an exception."""
    started = time.perf_counter()
    try:
        yield
    finally:
        AGENT_RUNS.labels(kind=kind).observe(time.perf_counter() - started)


def error_kind(error: BaseException | None) -> str:
    """The same families the bot explains to people (see ``bot.failures.explain``)."""
    if error is None:
        return "logged"
    if isinstance(error, psycopg.Error | psycopg_pool.PoolTimeout):
        return "database"
    if isinstance(error, AgentBusy):
        return "busy"
    if isinstance(error, AgentUnreachable):
        return "agent_server"
    module = type(error).__module__
    if module.startswith(("anthropic", "httpx", "langchain_anthropic")):
        return "model"
    if module.startswith(("slack_sdk", "slack_bolt", "aiohttp")):
        return "slack_api"
    return "internal"


class ErrorCounter(logging.Handler):
    """Counts ERROR (and worse) records by the kind of exception attached to them."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        ERRORS.labels(kind=error_kind(error)).inc()


_error_counter = ErrorCounter()


def count_errors() -> None:
    """Attach the error counter to the root logger (idempotent; call when a bot starts)."""
    root = logging.getLogger()
    if _error_counter not in root.handlers:
        root.addHandler(_error_counter)


async def refresh_pending(pool: Pool) -> None:
    """Read the pending-review count; on failure keep the last value (readyz reports the DB)."""
    try:
        async with pool.connection(timeout=2) as conn:
            cursor = await conn.execute(PENDING_QUERY)
            row = await cursor.fetchone()
    except (psycopg.Error, psycopg_pool.PoolTimeout):
        log.warning("could not read the pending review count", exc_info=True)
        return
    REVIEWS_PENDING.set(int(row["n"]) if row else 0)


def render() -> bytes:
    """The registry in Prometheus' text exposition format."""
    return generate_latest(REGISTRY)
