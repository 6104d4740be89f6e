"""``python -m bench --scale``: a large organisation's year, inserted in bulk, then timed.

At ``--scale-factor 1``: 1,000,000 pending reviews, 10,000,000 audit events, 100,000
conversations (each with a checkpoint and a decided review) and 1,000,000 event claims, spread
over a year. Then: the App Home's scan, the sweeper's queries with nothing due and with 1,000
due, ``audit`` exported whole and ``audit verify`` of its hash chain (time and each command's
own peak RSS), ``prune --older-than 90d`` of the year, and ``migrate`` on that database.
Pending reviews carry a request of the shape the graph writes (the call, the tool's schema,
Agent Inbox's copy of the arguments: about 1.7 kB), so the Home scan reads what it would in
production. Outside CI's quick run; a small factor checks that it works.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, LiteralString

import psycopg

from bench.fakes import InstantModel, bench_registry
from bench.run import collector_as_in_the_bot
from bench.stats import median, percentile
from bot import home
from bot.migrations import migrate_bot
from bot.retention import Pruner
from bot.store import SWEEPER_SQL
from graph import AgentSettings, open_agent
from graph.db import Pool
from graph.review import review_request
from graph.tools.registry import ToolRegistry, builtin_entries

FULL = {
    "pending": 1_000_000,
    "audit": 10_000_000,
    "conversations": 100_000,
    "event_claims": 1_000_000,
}

FILL: tuple[LiteralString, ...] = (
    """
    INSERT INTO slack_conversations (thread_id, team_id, channel_id, thread_ts, created_at)
    SELECT 'scale-th-' || i, 'T1', 'C1', i || '.0',
           now() - i * (interval '365 days' / %(conversations)s)
    FROM generate_series(1, %(conversations)s) i
    """,
    """
    INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint)
    SELECT 'scale-th-' || i, '', lpad(i::text, 8, '0'),
           jsonb_build_object('ts', now() - i * (interval '365 days' / %(conversations)s))
    FROM generate_series(1, %(conversations)s) i
    """,
    """
    INSERT INTO slack_reviews (ref, thread_id, interrupt_id, channel_id, thread_ts, tool_name,
        request, status, action, decided_by, decided_at, created_at)
    SELECT 'scale-done-' || i, 'scale-th-' || i, 'int', 'C1', i || '.0', 'post_message',
        '{"tool_call": {"name": "post_message", "args": {}}}', 'decided', 'continue', 'U2',
        at, at
    FROM generate_series(1, %(conversations)s) i,
        LATERAL (SELECT now() - i * (interval '365 days' / %(conversations)s) AS at) x
    """,
    """
    INSERT INTO slack_reviews (ref, thread_id, interrupt_id, channel_id, thread_ts, tool_name,
        request, status, created_at, expires_at, remind_at)
    SELECT 'scale-pending-' || i, 'scale-pending-th-' || i, 'int', 'C1', i || '.0',
        'post_message', %(request)s::json, 'pending',
        now() - make_interval(secs => i), now() + interval '1 day', now() + interval '12 hours'
    FROM generate_series(1, %(pending)s) i
    """,
    """
    INSERT INTO audit_events (at, outcome, thread_id, interrupt_id, tool_call_id, tool_name,
                              proposed_args, requested_by, decided_by)
    SELECT now() - i * (interval '365 days' / %(audit)s), 'approved',
           'scale-th-' || (i %% %(conversations)s), 'int', 'call', 'post_message',
           %(args)s::jsonb, 'U1', 'U2'
    FROM generate_series(1, %(audit)s) i
    """,
    # Slack's events as the bot claimed them over the year (1 in 1,000 still being handled).
    """
    INSERT INTO slack_events (event_id, status, claimed_at)
    SELECT 'scale-ev-' || i, CASE WHEN i %% 1000 = 0 THEN 'handling' ELSE 'done' END,
           now() - i * (interval '365 days' / %(event_claims)s)
    FROM generate_series(1, %(event_claims)s) i
    """,
    "ANALYZE",
)

DUE_SQL: LiteralString = """
    UPDATE slack_reviews SET expires_at = now() - interval '1 minute',
        remind_at = now() - interval '1 minute'
    WHERE ref IN (SELECT 'scale-pending-' || i FROM generate_series(1, 1000) i)
"""


ARGS = {"channel": "#general", "text": "Quarterly numbers are in: revenue up, churn down."}


def fill_params(counts: dict[str, int]) -> dict[str, Any]:
    """The sizes, a pending review's request as the graph writes it, and an event's arguments."""
    call = {"name": "post_message", "args": ARGS, "id": "toolu_1", "type": "tool_call"}
    info = ToolRegistry(builtin_entries()).info("post_message")
    request = review_request(call, info, "U1", ["U1"])  # type: ignore[arg-type]
    return {**counts, "request": json.dumps(request), "args": json.dumps(ARGS)}


@dataclass
class ScaleResults:
    counts: dict[str, int]
    timings: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for name, samples in self.timings.items():
            if len(samples) > 1:
                measured = f"p50 {median(samples) * 1000:.1f} ms, p99 "
                measured += f"{percentile(samples, 99) * 1000:.1f} ms"
            else:
                one = samples[0]
                measured = f"{one:.2f} s" if one >= 1 else f"{one * 1e3:.1f} ms"
            out.append((name, measured, f"{len(samples)} sample(s)"))
        return out

    def table(self) -> str:
        sizes = ", ".join(f"{n:,} {name}" for name, n in self.counts.items())
        lines = [f"scale: {sizes}", "| figure | measured | samples |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in self.rows()]
        return "\n".join([*lines, *(f"note: {note}" for note in self.notes)])


BIG_TABLES = frozenset(
    {"slack_reviews", "slack_events", "slack_conversations", "audit_events", "checkpoints"}
)


def _nodes(plan: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    own = (plan["Node Type"], plan.get("Relation Name"), plan.get("Index Name"))
    return [own, *(n for child in plan.get("Plans", ()) for n in _nodes(child))]


async def plans(pool: Pool) -> list[str]:
    """Each sweeper and Home query's plan at this size (EXPLAIN, nothing runs): the indexes it
    reads, or the big tables it scans sequentially (which ``tests/test_query_plans.py`` forbids
    at a smaller size)."""
    queries: dict[str, tuple[LiteralString, tuple[Any, ...]]] = {
        **{f"sweeper {name}": query for name, query in SWEEPER_SQL.items()},
        "home pending": (home.PENDING_SQL, (home.SCAN_LIMIT,)),
    }
    lines = []
    async with pool.connection() as conn:
        cursor = psycopg.AsyncClientCursor(conn)  # parameters inlined: EXPLAIN plans them
        for name, (sql, params) in queries.items():
            await cursor.execute(b"EXPLAIN (FORMAT JSON) " + sql.encode(), params)
            row = await cursor.fetchone()
            assert row is not None
            nodes = _nodes(row["QUERY PLAN"][0]["Plan"])
            seq = sorted({t for kind, t, _ in nodes if kind == "Seq Scan" and t in BIG_TABLES})
            used = sorted({index for _, _, index in nodes if index})
            verdict = f"SEQUENTIAL SCAN of {', '.join(seq)}" if seq else "no sequential scan"
            lines.append(f"plan {name}: {verdict}; indexes: {', '.join(used) or 'none'}")
    return lines


async def timed(times: int, work: Callable[[], Awaitable[Any]]) -> list[float]:
    samples: list[float] = []
    for _ in range(times):
        started = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - started)
    return samples


async def sweeper_queries(pool: Pool) -> None:
    """One sweeper pass's database work (its Slack calls are not what grows with the tables)."""
    async with pool.connection() as conn, conn.transaction():
        for sql, params in SWEEPER_SQL.values():
            await conn.execute(sql, params)
        raise psycopg.Rollback()  # nothing kept claimed: the next sample finds the same rows


def command(database_url: str, *args: str) -> tuple[float, int]:
    """Run ``python -m bot ARGS``: its wall time and its own peak RSS in kB (``wait4`` reports
    that one child's usage, not the largest child so far)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return time.perf_counter() - started, usage.ru_maxrss


async def run_scale(database_url: str, factor: float) -> ScaleResults:
    counts = {name: max(int(n * factor), 1000) for name, n in FULL.items()}
    results = ScaleResults(counts)
    settings = AgentSettings(database_url=database_url, pool_max_size=4)
    async with open_agent(settings, model=InstantModel(), registry=bench_registry()) as agent:
        pool = agent.pool
        await migrate_bot(pool)
        started = time.perf_counter()
        params = fill_params(counts)
        async with pool.connection() as conn:
            for statement in FILL:
                await conn.execute(statement, params)
        results.notes.append(f"bulk insert {time.perf_counter() - started:.1f} s")
        results.notes += await plans(pool)
        with collector_as_in_the_bot():  # the first sample is a process's first scan
            results.timings["App Home scan (newest 1,000 pending)"] = await timed(
                20, lambda: home.pending_reviews(pool)
            )
        sweep = results.timings
        sweep["sweeper queries, nothing due"] = await timed(10, lambda: sweeper_queries(pool))
        async with pool.connection() as conn:
            await conn.execute(DUE_SQL)
        sweep["sweeper queries, 1,000 due"] = await timed(10, lambda: sweeper_queries(pool))
        seconds, rss = await asyncio.to_thread(
            command, database_url, "audit", "--format", "jsonl", "--output", "/dev/null"
        )
        results.timings["audit export, everything (jsonl)"] = [seconds]
        results.notes.append(f"audit export peak RSS {rss / 1024:.0f} MiB")
        seconds, rss = await asyncio.to_thread(command, database_url, "audit", "verify")
        results.timings["audit verify, everything"] = [seconds]
        results.notes.append(f"audit verify peak RSS {rss / 1024:.0f} MiB")
        pruner = Pruner(pool, agent)
        started = time.perf_counter()
        report = await pruner.prune(timedelta(days=90))
        results.timings["prune --older-than 90d of the year"] = [time.perf_counter() - started]
        results.notes.append(f"prune deleted {len(report.conversations):,} conversations")
    seconds, _ = await asyncio.to_thread(command, database_url, "migrate")
    results.timings["migrate (nothing pending)"] = [seconds]
    return results
