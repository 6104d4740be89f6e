"""Every query the sweeper, the App Home and retention run uses an index at a moderate size.

A database of its own (created and dropped here) gets 20,000 rows in each big table, inserted in
bulk with a year's spread of times and the usual mix (most reviews decided, a few pending,
deciding or due), then ANALYZE; each query's plan (EXPLAIN, nothing runs) must read the big
tables through an index, never by a sequential scan. A query that passes here stays cheap as
the tables grow: its cost follows the rows it returns, not the rows the table holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString

import psycopg
import pytest

from bot.audit_chain import ROWS_SQL as VERIFY_ROWS_SQL
from bot.home import PENDING_SQL
from bot.migrations import migrate_bot
from bot.retention import _CANDIDATES_SQL, PRUNE_SQL
from bot.store import SWEEPER_SQL
from graph.db import THREAD_ACTIVITY_SQL, Pool, open_pool
from graph.migrations import migrate_agent
from tests.support.databases import own_database

ROWS = 20_000
BIG_TABLES = {
    "slack_reviews",
    "slack_review_approvals",
    "slack_events",
    "slack_conversations",
    "audit_events",
    "checkpoints",
}

# i = 1..ROWS, one conversation, review, event, audit event and checkpoint each, i * 26 minutes
# ago (a year in all). Reviews: 1 in 20 pending (1 in 2,000 of them past due), 1 in 500
# deciding, the rest decided; 1 in 1,000 waits for a repaint.
FILL: tuple[LiteralString, ...] = (
    """
    INSERT INTO slack_conversations (thread_id, team_id, channel_id, thread_ts, created_at)
    SELECT 'th-' || i, 'T1', 'C1', i || '.0', now() - i * interval '26 minutes'
    FROM generate_series(1, %(rows)s) i
    """,
    """
    INSERT INTO slack_reviews (ref, thread_id, interrupt_id, team_id, channel_id, thread_ts,
        tool_name, request, status, action, decided_by, decided_at, created_at, expires_at,
        remind_at, needs_sync)
    SELECT 'ref-' || i, 'th-' || i, 'int-' || i, 'T1', 'C1', i || '.0', 'post_message',
        '{"tool_call": {"name": "post_message", "args": {}}, "requested_by": "U1"}',
        s, CASE WHEN s = 'pending' THEN NULL ELSE 'continue' END,
        CASE WHEN s = 'pending' THEN NULL ELSE 'U2' END,
        CASE WHEN s = 'pending' THEN NULL ELSE at + interval '1 minute' END, at,
        CASE WHEN i %% 2000 = 0 THEN now() - interval '1 minute' ELSE now() + interval '1 day' END,
        now() + interval '12 hours', i %% 1000 = 3
    FROM generate_series(1, %(rows)s) i,
        LATERAL (SELECT now() - i * interval '26 minutes' AS at,
                        CASE WHEN i %% 20 = 0 THEN 'pending' WHEN i %% 500 = 1 THEN 'deciding'
                             ELSE 'decided' END AS s) x
    """,
    # Every review was due to escalate 30 minutes after it was asked; half of them did.
    """
    UPDATE slack_reviews SET escalate_at = created_at + interval '30 minutes',
        escalated_at = CASE WHEN split_part(ref, '-', 2)::int %% 2 = 0
                            THEN created_at + interval '30 minutes' END
    """,
    """
    INSERT INTO slack_review_approvals (ref, version, user_id)
    SELECT 'ref-' || i, 0, 'U3' FROM generate_series(1, %(rows)s, 10) i
    """,
    """
    INSERT INTO slack_events (event_id, status, claimed_at)
    SELECT 'Ev' || i, CASE WHEN i %% 1000 = 0 THEN 'handling' ELSE 'done' END,
        now() - i * interval '26 minutes'
    FROM generate_series(1, %(rows)s) i
    """,
    """
    INSERT INTO audit_events (at, outcome, thread_id, interrupt_id, tool_call_id, tool_name)
    SELECT now() - i * interval '26 minutes', 'approved', 'th-' || i, 'int-' || i, 'call',
        'post_message'
    FROM generate_series(1, %(rows)s) i
    """,
    """
    INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint)
    SELECT 'th-' || i, '', lpad(i::text, 8, '0'),
        jsonb_build_object('ts', now() - i * interval '26 minutes')
    FROM generate_series(1, %(rows)s) i
    """,
)


@pytest.fixture(scope="module")
def plans_database(database_url: str) -> Iterator[str]:
    with own_database(database_url, "plans") as url:
        yield url


@pytest.fixture
async def filled(plans_database: str) -> AsyncIterator[Pool]:
    async with open_pool(plans_database, max_size=2) as pool:
        await migrate_agent(pool)
        await migrate_bot(pool)
        async with pool.connection() as conn:
            cursor = await conn.execute("SELECT count(*) AS n FROM slack_reviews")
            row = await cursor.fetchone()
            if row is not None and row["n"] == 0:
                for statement in FILL:
                    await conn.execute(statement, {"rows": ROWS})
                await conn.execute("ANALYZE")
        yield pool


def scans(plan: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    yield plan["Node Type"], plan.get("Relation Name")
    for child in plan.get("Plans", ()):
        yield from scans(child)


async def plan_of(pool: Pool, sql: LiteralString, params: Any) -> list[tuple[str, str | None]]:
    async with pool.connection() as conn:
        cursor = psycopg.AsyncClientCursor(conn)  # parameters inlined: EXPLAIN plans them
        await cursor.execute(b"EXPLAIN (FORMAT JSON) " + sql.encode(), params)
        row = await cursor.fetchone()
    assert row is not None
    [document] = row["QUERY PLAN"] if isinstance(row, dict) else row[0]
    return list(scans(document["Plan"]))


def indexes(plan_nodes: dict[str, Any]) -> Iterator[str]:
    if "Index Name" in plan_nodes:
        yield str(plan_nodes["Index Name"])
    for child in plan_nodes.get("Plans", ()):
        yield from indexes(child)


def sequential(plan: list[tuple[str, str | None]]) -> list[str]:
    return [str(table) for node, table in plan if node == "Seq Scan" and table in BIG_TABLES]


THREADS = [f"th-{i}" for i in range(15_000, 15_100)]


def prune_params() -> dict[str, Any]:
    """A 90-day retention's first pass over the year of rows: most of them are past the cut."""
    return {
        "cut": datetime.now(UTC) - timedelta(days=90),
        "after_at": datetime(1970, 1, 1, tzinfo=UTC),
        "after_id": "",
        "limit": 100,
        "ids": THREADS,
    }


QUERIES: dict[str, tuple[LiteralString, Any]] = {
    **{f"sweeper {name}": query for name, query in SWEEPER_SQL.items()},
    "home pending": (PENDING_SQL, (50,)),  # type: ignore[dict-item]
    "prune dry-run candidates": (_CANDIDATES_SQL, None),
    **{f"prune {name}": (sql, None) for name, sql in PRUNE_SQL.items()},
    "agent last_activity": (THREAD_ACTIVITY_SQL, (THREADS,)),  # type: ignore[dict-item]
    "audit verify": (VERIFY_ROWS_SQL, ()),  # streams the chains in order from their index
}


@pytest.mark.parametrize("name", sorted(QUERIES))
async def test_every_sweeper_home_and_prune_query_uses_an_index(filled: Pool, name: str) -> None:
    sql, params = QUERIES[name]
    plan = await plan_of(filled, sql, prune_params() if params is None else params)
    assert sequential(plan) == [], f"{name}: {plan}"


async def test_reminders_read_their_own_index(filled: Pool) -> None:
    """Not the pending reviews' index: that one would filter every pending review a pass."""
    sql, params = SWEEPER_SQL["remind_due"]
    async with filled.connection() as conn:
        cursor = psycopg.AsyncClientCursor(conn)
        await cursor.execute(b"EXPLAIN (FORMAT JSON) " + sql.encode(), params)
        row = await cursor.fetchone()
    assert row is not None
    assert "slack_reviews_remind" in set(indexes(row["QUERY PLAN"][0]["Plan"]))


async def test_escalations_read_their_own_index(filled: Pool) -> None:
    """Like the reminders: the pending reviews not escalated yet, by when they fall due."""
    sql, params = SWEEPER_SQL["escalate"]
    async with filled.connection() as conn:
        cursor = psycopg.AsyncClientCursor(conn)
        await cursor.execute(b"EXPLAIN (FORMAT JSON) " + sql.encode(), params)
        row = await cursor.fetchone()
    assert row is not None
    assert "slack_reviews_escalate" in set(indexes(row["QUERY PLAN"][0]["Plan"]))
