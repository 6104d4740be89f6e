"""The audit trail's hash chain against a real PostgreSQL: ``python -m bot audit verify`` passes
on an intact trail and after a retention cut, and names the first broken link when a superuser
with the triggers off deletes, alters or reorders a row. Concurrent appends from two pools keep
one linear chain per workspace.

Each test gets a database of its own: tampering breaks the chain for everyone who shares it.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import psycopg
import pytest

from bot import __main__ as cli
from bot.audit import AuditEvent, AuditLog
from bot.audit_chain import GENESIS, verify
from bot.migrations import migrate_bot
from bot.retention import Pruner
from bot.store import BotStore
from graph.db import Pool, open_pool
from tests.support.databases import own_database


@pytest.fixture
def chain_url(database_url: str) -> Iterator[str]:
    with own_database(database_url, "chain") as url:
        yield url


@pytest.fixture
async def pool(chain_url: str) -> AsyncIterator[Pool]:
    async with open_pool(chain_url, max_size=4) as pool:
        await migrate_bot(pool)
        yield pool


def event(team: str, n: int, **fields: object) -> AuditEvent:
    base: dict[str, object] = {
        "outcome": "approved",
        "thread_id": f"slack:{team}:C1:{n}.0",
        "interrupt_id": f"int-{n}",
        "tool_call_id": f"call-{n}",
        "tool_name": "post_message",
        "proposed_args": {"channel": "#general", "text": f"hello {n} é"},
        "executed_args": {"channel": "#general", "text": f"hello {n} é"},
        "decided_by": "U0ALICE",
        "args_digest": f"sha256:{n:064x}",
    }
    return AuditEvent(**(base | fields))  # type: ignore[arg-type]


async def append(pool: Pool, team: str, count: int, start: int = 1) -> None:
    log = AuditLog(pool)
    for n in range(start, start + count):
        await log.record(event(team, n))


async def tamper(pool: Pool, statement: str, *params: object) -> None:
    """What a superuser can do: turn the triggers off for a session and rewrite the table."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(statement, params)  # type: ignore[arg-type]


async def ids(pool: Pool, team: str) -> list[int]:
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id FROM audit_events WHERE workspace = %s ORDER BY chain_seq", (team,)
            )
        ).fetchall()
    return [int(row["id"]) for row in rows]


def run_verify(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    code = cli.main(["audit", "verify"])
    return code, out.getvalue()


async def test_an_intact_trail_verifies_and_each_event_links_to_the_previous(
    pool: Pool, chain_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(pool, "T1", 4)
    await append(pool, "T2", 2)
    store = BotStore(pool)  # a review transition appends its event in the same statement
    ref = await store.add_review(
        "slack:T1:C1:9.0",
        "int-9",
        "T1",
        "C1",
        "9.0",
        {
            "question": "?",
            "tool_call": {"name": "post_message", "args": {"text": "hi"}, "id": "call-9"},
            "tool": {"name": "post_message", "description": "", "args_schema": {}},
            "requested_by": "U0BOB",
        },
        audit=event("T1", 9, outcome="requested"),
    )
    assert ref is not None

    found = await verify(pool)
    assert found.broken is None and found.events == 7
    assert found.heads["T1"][0] == 5 and found.heads["T2"][0] == 2
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT chain_seq, prev_hash, hash FROM audit_events WHERE workspace = 'T1' "
                "ORDER BY chain_seq"
            )
        ).fetchall()
    assert rows[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))

    code, out = await asyncio.to_thread(run_verify, chain_url, monkeypatch)
    assert code == 0, out
    assert "audit trail intact: 7 event(s)" in out and "workspace 'T1': 5 event(s)" in out


async def test_a_deleted_event_is_named_by_the_next_one(
    pool: Pool, chain_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(pool, "T1", 5)
    chain = await ids(pool, "T1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the trigger still refuses
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM audit_events WHERE id = %s", (chain[2],))
    await tamper(pool, "DELETE FROM audit_events WHERE id = %s", chain[2])

    found = await verify(pool)
    assert found.broken is not None
    assert found.broken.event_id == chain[3]
    assert "events 3 to 3 are missing" in found.broken.problem
    code, out = await asyncio.to_thread(run_verify, chain_url, monkeypatch)
    assert code == 1 and f"broken at event {chain[3]}" in out


async def test_the_last_event_deleted_is_found_at_the_head(pool: Pool) -> None:
    await append(pool, "T1", 3)
    chain = await ids(pool, "T1")
    await tamper(pool, "DELETE FROM audit_events WHERE id = %s", chain[-1])

    found = await verify(pool)
    assert found.broken is not None and found.broken.event_id is None
    assert "the last 1 event(s) are missing" in found.broken.problem


async def test_an_altered_event_is_named(pool: Pool) -> None:
    await append(pool, "T1", 4)
    chain = await ids(pool, "T1")
    await tamper(
        pool,
        'UPDATE audit_events SET executed_args = \'{"channel": "#random"}\' WHERE id = %s',
        chain[1],
    )

    found = await verify(pool)
    assert found.broken is not None and found.broken.event_id == chain[1]
    assert "altered" in found.broken.problem


async def test_an_altered_time_is_named(pool: Pool) -> None:
    await append(pool, "T1", 3)
    chain = await ids(pool, "T1")
    await tamper(
        pool, "UPDATE audit_events SET at = at - interval '1 second' WHERE id = %s", chain[0]
    )

    found = await verify(pool)
    assert found.broken is not None and found.broken.event_id == chain[0]


async def test_reordered_events_are_named(pool: Pool) -> None:
    await append(pool, "T1", 4)
    chain = await ids(pool, "T1")
    # swap the positions of events 2 and 3 (their sequence numbers)
    for old, new in ((2, -1), (3, 2), (-1, 3)):
        await tamper(
            pool,
            "UPDATE audit_events SET chain_seq = %s WHERE workspace = 'T1' AND chain_seq = %s",
            new,
            old,
        )

    found = await verify(pool)
    assert found.broken is not None and found.broken.event_id == chain[2]
    assert "reordered" in found.broken.problem


async def test_an_event_inserted_with_the_trigger_off_is_named(pool: Pool) -> None:
    await append(pool, "T1", 2)
    await tamper(
        pool,
        "INSERT INTO audit_events (at, outcome, thread_id, interrupt_id, tool_call_id, "
        "tool_name) VALUES (now(), 'approved', 'slack:T1:C1:5.0', 'i', 'c', 'post_message')",
    )

    found = await verify(pool)
    assert found.broken is not None and "not chained" in found.broken.problem


async def test_after_a_retention_cut_the_trail_still_verifies(
    pool: Pool, chain_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append(pool, "T1", 25)
    await append(pool, "T2", 5)
    # the first 12 events of T1 and 3 of T2 are made old (history, not the bot's writes)
    await tamper(
        pool,
        "UPDATE audit_events SET at = at - interval '400 days' WHERE "
        "(workspace = 'T1' AND chain_seq <= 12) OR (workspace = 'T2' AND chain_seq <= 3)",
    )
    await tamper(  # ... and rechained as if they had been written then
        pool,
        "UPDATE audit_events SET hash = NULL WHERE workspace IN ('T1', 'T2')",
    )
    await rechain(pool)
    assert (await verify(pool)).broken is None

    report = await Pruner(pool, agent=None, batch=1).prune(  # type: ignore[arg-type]
        None, audit_older_than=timedelta(days=365)
    )

    assert report.audit_events == 15
    assert len(await ids(pool, "T1")) == 13
    found = await verify(pool)
    assert found.broken is None, found.broken
    assert found.events == 15 and found.heads["T1"][0] == 25
    async with pool.connection() as conn:  # batches of 10: T1's cut is in two parts
        cuts = await (
            await conn.execute(
                "SELECT first_seq, last_seq FROM audit_cuts WHERE workspace = 'T1' "
                "ORDER BY first_seq"
            )
        ).fetchall()
    assert [(c["first_seq"], c["last_seq"]) for c in cuts] == [(1, 10), (11, 12)]
    code, out = await asyncio.to_thread(run_verify, chain_url, monkeypatch)
    assert code == 0, out

    # a row deleted right after the cut is still caught
    await tamper(pool, "DELETE FROM audit_events WHERE workspace = 'T1' AND chain_seq = 13")
    found = await verify(pool)
    assert found.broken is not None and "missing" in found.broken.problem


async def test_a_trail_cut_entirely_still_verifies_against_its_head(pool: Pool) -> None:
    await append(pool, "T3", 3)
    await tamper(pool, "UPDATE audit_events SET at = at - interval '400 days'")
    await tamper(pool, "UPDATE audit_events SET hash = NULL")
    await rechain(pool)
    await Pruner(pool, agent=None).prune(  # type: ignore[arg-type]
        None, audit_older_than=timedelta(days=365)
    )
    found = await verify(pool)
    assert found.broken is None and found.events == 0 and found.heads["T3"][0] == 3


async def rechain(pool: Pool) -> None:
    """Relink every row whose hash is NULL, with the migration's own backfill (step 5)."""
    from bot.migrations import ARGS_DIGEST_AND_AUDIT_CHAIN

    backfill = next(s for s in ARGS_DIGEST_AND_AUDIT_CHAIN if "FOR e IN SELECT" in s)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("DELETE FROM audit_chain_heads")
        await conn.execute(backfill)  # type: ignore[arg-type]


async def test_concurrent_appends_from_two_pools_keep_one_linear_chain(
    pool: Pool, chain_url: str
) -> None:
    async with open_pool(chain_url, max_size=4) as other:
        logs = [AuditLog(pool), AuditLog(other)]

        async def writer(index: int) -> None:
            for n in range(15):
                team = "T1" if n % 3 else "T2"
                await logs[index % 2].record(event(team, index * 100 + n))

        await asyncio.gather(*(writer(i) for i in range(8)))
    found = await verify(pool)
    assert found.broken is None, found.broken
    assert found.events == 120
    assert found.heads["T1"][0] + found.heads["T2"][0] == 120


async def test_the_export_carries_the_chain(pool: Pool, chain_url: str) -> None:
    await append(pool, "T1", 2)
    from bot.audit_cli import jsonl_line

    rows = [json.loads(jsonl_line(row)) async for row in AuditLog(pool).stream()]
    assert [r["chain_seq"] for r in rows] == [1, 2]
    assert rows[0]["prev_hash"] == GENESIS.hex() and rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[0]["workspace"] == "T1" and rows[0]["args_digest"] == f"sha256:{1:064x}"
