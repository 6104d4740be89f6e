"""Retention against a real PostgreSQL and the real agent: conversations idle past the cut lose
their agent state, reviews, approvals and conversation row; event claims go by their own age;
recent conversations and any with a pending review stay; the audit trail stays unless its own
retention is given, and then only through the sanctioned, recorded cut.

Every test backdates only its own rows (by far more than the cut), so tests sharing the
database never prune each other's."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.__main__ import parser
from bot.audit import AuditEvent
from bot.migrations import migrate_bot
from bot.retention import (
    Pruner,
    Retention,
    RetentionError,
    RetentionTask,
    parse_age,
    retention_from_env,
)
from bot.store import BotStore
from graph import AgentService, RunOutcome
from graph.db import Pool, open_pool
from graph.decisions import Approve
from tests.conftest import AgentFactory

CUT = timedelta(days=30)
LONG_AGO = timedelta(days=400)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    async with open_pool(database_url, max_size=4) as pool:
        await migrate_bot(pool)
        yield pool


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def rows_of(pool: Pool, thread: str) -> dict[str, int]:
    """How many rows the thread has in each table retention deletes from."""
    counts: dict[str, int] = {}
    async with pool.connection() as conn:
        for table in ("checkpoints", "checkpoint_blobs", "slack_reviews", "slack_conversations"):
            cursor = await conn.execute(
                f"SELECT count(*) AS n FROM {table} WHERE thread_id = %s",  # type: ignore[arg-type]
                (thread,),
            )
            row = await cursor.fetchone()
            counts[table] = 0 if row is None else int(row["n"])
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM slack_review_approvals a JOIN slack_reviews r USING (ref)"
            " WHERE r.thread_id = %s",
            (thread,),
        )
        row = await cursor.fetchone()
        counts["approvals"] = 0 if row is None else int(row["n"])
    return counts


async def backdate(pool: Pool, thread: str, by: timedelta = LONG_AGO) -> None:
    """Make every trace of the thread ``by`` older (the checkpoint's own timestamp too)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_conversations SET created_at = created_at - %s WHERE thread_id = %s",
            (by, thread),
        )
        await conn.execute(
            "UPDATE slack_reviews SET created_at = created_at - %s,"
            " decided_at = decided_at - %s WHERE thread_id = %s",
            (by, by, thread),
        )
        await conn.execute(
            """
            UPDATE checkpoints SET checkpoint = jsonb_set(checkpoint, '{ts}', to_jsonb(to_char(
                ((checkpoint->>'ts')::timestamptz - %s) AT TIME ZONE 'UTC',
                'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))
            WHERE thread_id = %s
            """,
            (by, thread),
        )


def request(tool: str = "post_message") -> Any:
    return {
        "question": "ok?",
        "tool_call": {"name": tool, "args": {"text": "hi"}, "id": "call-1"},
        "tool": {"name": tool, "description": "", "args_schema": {}},
        "requested_by": "U0CAROL",
    }


async def chatted(agent: AgentService, store: BotStore, thread: str) -> None:
    """A conversation with agent state (a finished turn) and the bot's row for it."""
    await store.remember_conversation(thread, "T1", "C1", "1.0", "U0CAROL")
    await agent.start_turn(thread, "tell me a joke")


async def decided(store: BotStore, thread: str) -> str:
    """A review of the thread, approved (with a quorum approval row) and settled."""
    ref = await store.add_review(thread, "int-1", "T1", "C1", "1.0", request())
    assert ref is not None
    assert await store.approve(ref, 0, "U0ALICE") == ["U0ALICE"]
    assert await store.claim(ref, Approve("U0ALICE")) is not None
    audit = AuditEvent(
        outcome="approved",
        thread_id=thread,
        interrupt_id="int-1",
        tool_call_id="call-1",
        tool_name="post_message",
        decided_by="U0ALICE",
    )
    await store.finish(ref, audit)
    return ref


async def idle_and_decided(agent: AgentService, store: BotStore, thread: str) -> None:
    """A conversation with agent state and a decided review, all of it from long before the
    cut: what retention removes."""
    await chatted(agent, store, thread)
    await decided(store, thread)
    await backdate(store.pool, thread)


GONE = {
    "checkpoints": 0,
    "checkpoint_blobs": 0,
    "slack_reviews": 0,
    "slack_conversations": 0,
    "approvals": 0,
}


async def test_idle_conversations_go_recent_and_pending_ones_stay(
    pool: Pool, offline_agent: AgentService
) -> None:
    store = BotStore(pool)
    old, recent, waiting = unique("old"), unique("recent"), unique("waiting")
    for thread in (old, recent):
        await chatted(offline_agent, store, thread)
        await decided(store, thread)
    await store.remember_conversation(waiting, "T1", "C1", "2.0", "U0CAROL")
    turn = await offline_agent.start_turn(waiting, "what's the weather in sf?")
    assert isinstance(turn, RunOutcome)
    [review] = turn.pending
    assert await store.add_review(waiting, review.interrupt_id, "T1", "C1", "2.0", review.request)
    for thread in (old, waiting):
        await backdate(pool, thread)
    before = await rows_of(pool, old)
    assert before["checkpoints"] and before["slack_reviews"] and before["approvals"]

    report = await Pruner(pool, offline_agent).prune(CUT)

    assert old in report.conversations
    assert recent not in report.conversations and waiting not in report.conversations
    assert await rows_of(pool, old) == GONE
    assert await offline_agent.pending_reviews(waiting) == [review]
    kept = await rows_of(pool, recent)
    assert kept["checkpoints"] and kept["slack_reviews"] == 1 and kept["approvals"] == 1
    assert (await rows_of(pool, waiting))["slack_reviews"] == 1
    async with pool.connection() as conn:  # the audit trail is kept by default
        cursor = await conn.execute("SELECT outcome FROM audit_events WHERE thread_id = %s", (old,))
        assert [row["outcome"] for row in await cursor.fetchall()] == ["approved"]


async def test_a_conversation_active_in_the_agent_since_the_cut_is_kept(
    pool: Pool, offline_agent: AgentService
) -> None:
    """Old bot rows but a recent checkpoint (a turn with no review): it is not idle."""
    store = BotStore(pool)
    thread = unique("busy")
    await idle_and_decided(offline_agent, store, thread)
    await offline_agent.start_turn(thread, "tell me another joke")

    report = await Pruner(pool, offline_agent).prune(CUT)

    assert thread not in report.conversations
    assert (await rows_of(pool, thread))["slack_reviews"] == 1


async def test_the_agent_keeps_a_thread_waiting_for_a_review_the_bot_never_registered(
    pool: Pool, offline_agent: AgentService
) -> None:
    """A poster that died before registering the review leaves no review row: the agent's own
    state still says a review waits, and the agent refuses to delete the thread."""
    store = BotStore(pool)
    thread = unique("unregistered")
    await store.remember_conversation(thread, "T1", "C1", "3.0", "U0CAROL")
    turn = await offline_agent.start_turn(thread, "what's the weather in sf?")
    assert isinstance(turn, RunOutcome) and turn.pending
    await backdate(pool, thread)

    dry = await Pruner(pool, offline_agent).prune(CUT, dry_run=True)
    report = await Pruner(pool, offline_agent).prune(CUT)

    assert thread not in dry.conversations and thread not in report.conversations
    assert await offline_agent.pending_reviews(thread) == turn.pending
    assert (await rows_of(pool, thread))["slack_conversations"] == 1


async def test_event_claims_age_out_by_their_own_age(
    pool: Pool, offline_agent: AgentService
) -> None:
    store = BotStore(pool)
    old, new = unique("Ev"), unique("Ev")
    for event_id in (old, new):
        assert await store.claim_event(event_id, {"event_id": event_id})
        await store.finish_event(event_id)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_events SET claimed_at = claimed_at - %s WHERE event_id = %s",
            (LONG_AGO, old),
        )
    report = await Pruner(pool, offline_agent).prune(CUT)
    assert report.events >= 1
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT event_id FROM slack_events WHERE event_id = ANY (%s)", ([old, new],)
        )
        assert [row["event_id"] for row in await cursor.fetchall()] == [new]


async def test_dry_run_deletes_nothing_and_says_what_it_would(
    pool: Pool, offline_agent: AgentService
) -> None:
    store = BotStore(pool)
    thread = unique("dry")
    await idle_and_decided(offline_agent, store, thread)
    before = await rows_of(pool, thread)

    dry = await Pruner(pool, offline_agent).prune(CUT, dry_run=True)

    assert thread in dry.conversations and dry.reviews >= 1 and dry.approvals >= 1
    assert dry.lines()[0].startswith("would delete")
    assert await rows_of(pool, thread) == before
    real = await Pruner(pool, offline_agent).prune(CUT)
    assert thread in real.conversations and real.lines()[0].startswith("deleted")
    assert await rows_of(pool, thread) == GONE


async def test_two_replicas_pruning_at_once_delete_each_conversation_once(
    database_url: str, agent_factory: AgentFactory
) -> None:
    threads = [unique("replica") for _ in range(8)]
    async with (
        agent_factory() as first,
        agent_factory() as second,
        open_pool(database_url, max_size=4) as pool_a,
        open_pool(database_url, max_size=4) as pool_b,
    ):
        store = BotStore(pool_a)
        for thread in threads:
            await idle_and_decided(first, store, thread)
        reports = await asyncio.gather(
            Pruner(pool_a, first, batch=2).prune(CUT),
            Pruner(pool_b, second, batch=2).prune(CUT),
        )
        ours = [t for report in reports for t in report.conversations if t in threads]
        assert sorted(ours) == sorted(threads)  # each once, by one replica or the other
        for thread in threads:
            assert await rows_of(pool_a, thread) == GONE


async def old_audit_rows(pool: Pool, thread: str, n: int = 3) -> None:
    """Audit rows stamped long ago (inserting is what the trail allows; changing is not)."""
    async with pool.connection() as conn:
        for i in range(n):
            await conn.execute(
                "INSERT INTO audit_events (at, outcome, thread_id, interrupt_id, tool_call_id,"
                " tool_name) VALUES (now() - %s, 'requested', %s, %s, 'call', 'post_message')",
                (LONG_AGO, thread, f"int-{i}"),
            )


async def audit_ids(pool: Pool, thread: str) -> list[int]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id FROM audit_events WHERE thread_id = %s ORDER BY id", (thread,)
        )
        return [int(row["id"]) for row in await cursor.fetchall()]


async def test_audit_is_pruned_only_with_its_own_retention_and_the_cut_is_recorded(
    pool: Pool, offline_agent: AgentService
) -> None:
    thread = unique("audited")
    await old_audit_rows(pool, thread)
    ids = await audit_ids(pool, thread)

    await Pruner(pool, offline_agent).prune(CUT)
    assert await audit_ids(pool, thread) == ids
    async with pool.connection() as conn:  # the trail still refuses a plain DELETE
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("DELETE FROM audit_events WHERE thread_id = %s", (thread,))

    report = await Pruner(pool, offline_agent).prune(None, audit_older_than=timedelta(days=365))

    assert report.audit_events >= len(ids)
    assert await audit_ids(pool, thread) == []
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT sum(deleted) AS n FROM audit_cuts WHERE first_id <= %s AND last_id >= %s",
            (max(ids), min(ids)),
        )
        row = await cursor.fetchone()
        assert row is not None and row["n"] >= len(ids)


async def delete_under_cut(conn: Any, thread: str, age: timedelta) -> None:
    """What prune does, by hand: declare a cut ``age`` ago, then delete the thread's rows."""
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('bot.audit_prune_before', (now() - %s)::text, true)", (age,)
        )
        await conn.execute("DELETE FROM audit_events WHERE thread_id = %s", (thread,))


async def test_the_audit_cut_setting_lets_through_only_rows_older_than_the_cut(
    pool: Pool,
) -> None:
    thread = unique("recent-audit")
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO audit_events (outcome, thread_id, interrupt_id, tool_call_id, tool_name)"
            " VALUES ('requested', %s, 'int', 'call', 'post_message')",
            (thread,),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await delete_under_cut(conn, thread, timedelta(days=1))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("TRUNCATE audit_events")
    assert len(await audit_ids(pool, thread)) == 1


async def test_the_sweeper_prunes_at_most_once_an_interval(
    pool: Pool, offline_agent: AgentService
) -> None:
    store = BotStore(pool)
    thread = unique("swept")
    await chatted(offline_agent, store, thread)
    await backdate(pool, thread)
    task = RetentionTask(Retention(conversations=CUT))
    first = await task.run_due(pool, offline_agent)
    assert first is not None and thread in first.conversations
    assert await task.run_due(pool, offline_agent) is None  # not due again within the hour
    assert await RetentionTask(Retention()).run_due(pool, offline_agent) is None  # unset: off


def test_settings_and_the_command_line() -> None:
    assert retention_from_env({}) == Retention()
    assert retention_from_env({"RETENTION_DAYS": "90", "AUDIT_RETENTION_DAYS": "400"}) == (
        Retention(timedelta(days=90), timedelta(days=400))
    )
    for bad in ("0", "-1", "90d", "soon"):
        with pytest.raises(RetentionError):
            retention_from_env({"RETENTION_DAYS": bad})
    assert parse_age("90d") == parse_age("90") == timedelta(days=90)
    assert parse_age("12h") == timedelta(hours=12)
    args = parser().parse_args(["prune", "--older-than", "90d", "--dry-run"])
    assert (args.command, args.older_than, args.dry_run) == ("prune", timedelta(days=90), True)
    assert args.audit_older_than is None
    with pytest.raises(SystemExit):
        parser().parse_args(["prune", "--older-than", "soon"])


def test_retention_is_documented() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    example = (root / ".env.example").read_text()
    production = (root / "docs" / "production.md").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], cwd=root, capture_output=True, text=True
    )
    for name in ("RETENTION_DAYS", "AUDIT_RETENTION_DAYS"):
        assert re.search(rf"^\| `{name}` \|.*\| unset: keep forever \|$", readme, re.MULTILINE)
        assert f"\n{name}=\n" in example, name
        assert re.search(rf"^  {name}\s", done.stdout, re.MULTILINE), name
        assert name in production
    assert re.search(r"^  prune\s", done.stdout, re.MULTILINE)
    assert "## Retention" in production and "python -m bot prune --older-than 90d" in production


ROOT = Path(__file__).resolve().parent.parent


def dry_run_command(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "prune", "--older-than", "30d", "--dry-run"],
        cwd=ROOT,
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_prune_command_prints_what_it_would_delete(
    pool: Pool, offline_agent: AgentService, database_url: str
) -> None:
    store = BotStore(pool)
    thread = unique("cli")
    await chatted(offline_agent, store, thread)
    await backdate(pool, thread)
    before = await rows_of(pool, thread)
    done = await asyncio.to_thread(dry_run_command, database_url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("would delete") and "event claim(s)" in done.stdout
    assert await rows_of(pool, thread) == before


async def grant_row(pool: Pool, tool: str, *, ends: str, revoked: str | None = None) -> int:
    """A standing approval of ``tool`` made long ago, ending at ``ends`` (SQL, by now())."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO standing_grants (tool_name, constraints, created_by, created_at,"
            " expires_at, max_uses, channel_id, thread_id, interrupt_id, tool_call_id,"
            " source_ref, revoked_at, revoked_by)"
            f" VALUES (%s, '{{}}', ARRAY['U0ALICE'], now() - %s, {ends}, 5, 'C1', 't', 'i',"  # type: ignore[arg-type]
            f" 'c', %s, {revoked or 'NULL'}, %s) RETURNING id",
            (tool, LONG_AGO, unique("src"), None if revoked is None else "U0ALICE"),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row["id"])


async def offer_row(pool: Pool, ref: str, age: timedelta) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO standing_grant_offers (ref, version, user_id, seconds, max_uses, scope,"
            " at) VALUES (%s, 0, 'U0ALICE', 3600, 5, '{}', now() - %s)",
            (ref, age),
        )


async def test_ended_grants_and_settled_offers_go_active_grants_and_live_offers_stay(
    pool: Pool, offline_agent: AgentService
) -> None:
    store, tool = BotStore(pool), unique("tool")
    expired = await grant_row(pool, tool, ends="now() - interval '300 days'")
    revoked = await grant_row(
        pool, tool, ends="now() + interval '1 day'", revoked="now() - interval '300 days'"
    )
    active = await grant_row(pool, tool, ends="now() + interval '1 day'")
    recent = await grant_row(pool, tool, ends="now() - interval '1 day'")
    pending_thread, decided_thread = unique("offers"), unique("offers")
    await store.remember_conversation(pending_thread, "T1", "C1", "1.0", "U0CAROL")
    pending = await store.add_review(pending_thread, "int-1", "T1", "C1", "1.0", request())
    assert pending is not None
    await store.remember_conversation(decided_thread, "T1", "C1", "1.0", "U0CAROL")
    settled = await decided(store, decided_thread)
    gone, fresh = unique("gone-ref"), unique("fresh-ref")
    for ref, age in ((gone, LONG_AGO), (settled, LONG_AGO), (pending, LONG_AGO), (fresh, CUT / 3)):
        await offer_row(pool, ref, age)

    dry = await Pruner(pool, offline_agent).prune(CUT, dry_run=True)
    assert dry.grants >= 2 and dry.grant_offers >= 2
    assert any("standing approval(s)" in line for line in dry.lines())
    report = await Pruner(pool, offline_agent, batch=1).prune(CUT)  # batches of ten

    assert report.grants >= 2 and report.grant_offers >= 2
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id FROM standing_grants WHERE tool_name = %s ORDER BY id", (tool,)
        )
        assert [row["id"] for row in await cursor.fetchall()] == [active, recent]
        cursor = await conn.execute(
            "SELECT ref FROM standing_grant_offers WHERE ref = ANY (%s)",
            ([gone, settled, pending, fresh],),
        )
        assert sorted(row["ref"] for row in await cursor.fetchall()) == sorted([pending, fresh])
    assert expired not in (active, recent) and revoked not in (active, recent)
