"""Versioned migrations against a real PostgreSQL, each test on a database of its own: a fresh
database, one built by the statements released before versions were recorded (it upgrades in
place, keeping its rows), two ``python -m bot migrate`` processes racing on one database, and
what ``--status`` prints."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.audit import AuditEvent, AuditLog
from bot.audit_chain import verify
from bot.migrations import BOT, migrate_bot
from graph import migrations
from graph.db import Pool, PooledPostgresSaver, migrate, open_pool
from tests.support.chaos import bot_env, fresh_database
from tests.support.legacy_schema import LEGACY_STATEMENTS

ROOT = Path(__file__).resolve().parent.parent
PENDING_FOR_INDEXES = {
    "slack_reviews_pending_requester",
    "slack_reviews_pending_tool",
    "slack_reviews_pending_recent",
}


async def recorded(pool: Pool) -> list[tuple[str, int]]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT component, version FROM schema_migrations ORDER BY component, version"
        )
        return [(row["component"], row["version"]) for row in await cursor.fetchall()]


async def indexes(pool: Pool) -> set[str]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'slack_reviews'"
        )
        return {row["indexname"] for row in await cursor.fetchall()}


EVERY_STEP = [("agent", s.version) for s in migrations.AGENT.steps] + [
    ("bot", s.version) for s in BOT.steps
]


def test_steps_are_numbered_from_one_in_order() -> None:
    with pytest.raises(ValueError, match="numbered"):
        migrations.Component("x", (migrations.Step(2, "two", ()),))
    assert [s.version for s in BOT.steps] == list(range(1, len(BOT.steps) + 1))


async def test_a_fresh_database_gets_every_step_recorded_once(database_url: str) -> None:
    async with fresh_database(database_url, "mig") as url, open_pool(url, max_size=2) as pool:
        assert [s.pending for s in await migrations.status(pool, BOT)] == [True] * len(BOT.steps)
        ran = [*await migrations.migrate_agent(pool), *await migrate_bot(pool)]
        assert len(ran) == len(EVERY_STEP)
        assert await recorded(pool) == EVERY_STEP
        assert await migrate_bot(pool) == [] and await migrations.migrate_agent(pool) == []
        assert await recorded(pool) == EVERY_STEP
        assert not await indexes(pool) & PENDING_FOR_INDEXES
        assert "slack_reviews_status_created" in await indexes(pool)  # the App Home's


async def test_a_database_built_by_the_unversioned_statements_upgrades_in_place(
    database_url: str,
) -> None:
    async with fresh_database(database_url, "mig") as url, open_pool(url, max_size=2) as pool:
        await migrate(pool, LEGACY_STATEMENTS, PooledPostgresSaver(pool).setup)  # the old start
        assert await indexes(pool) >= PENDING_FOR_INDEXES
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO slack_reviews (ref, thread_id, interrupt_id, channel_id, thread_ts,"
                " tool_name, request) VALUES ('r1', 't1', 'i1', 'C1', '1.0', 'post', '{}')"
            )
            for thread in ("t1", "slack:T1:C1:1.0", "slack:T1:C1:2.0"):
                await conn.execute(
                    "INSERT INTO audit_events (outcome, thread_id, interrupt_id, tool_call_id,"
                    " tool_name) VALUES ('requested', %s, 'i1', 'c1', 'post')",
                    (thread,),
                )
        await migrations.migrate_agent(pool)
        await migrate_bot(pool)
        assert await recorded(pool) == EVERY_STEP
        assert not await indexes(pool) & PENDING_FOR_INDEXES
        async with pool.connection() as conn:
            cursor = await conn.execute("SELECT ref FROM slack_reviews")
            assert [row["ref"] for row in await cursor.fetchall()] == ["r1"]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # still append-only
                await conn.execute("DELETE FROM audit_events")
        # the events written before the chain existed were linked by the upgrade
        await AuditLog(pool).record(AuditEvent("approved", "slack:T1:C1:3.0", "i", "c", "post"))
        verified = await verify(pool)
        assert verified.broken is None and verified.events == 4
        assert verified.heads["T1"][0] == 3 and verified.heads[""][0] == 1


async def test_steps_a_newer_release_ran_are_reported_and_left_alone(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with fresh_database(database_url, "mig") as url, open_pool(url, max_size=2) as pool:
        await migrate_bot(pool)
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO schema_migrations (component, version, name) VALUES ('bot', 99, 'x')"
            )
        assert await migrate_bot(pool) == []
        assert "bot steps [99] this release does not know" in caplog.text
        assert [s.pending for s in await migrations.status(pool, BOT)] == [False] * len(BOT.steps)


async def run_migrate(url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "migrate",
        *args,
        cwd=ROOT,
        env=bot_env(DATABASE_URL=url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_two_processes_migrating_at_once_run_each_step_once(database_url: str) -> None:
    async with fresh_database(database_url, "mig") as url:
        results = await asyncio.gather(run_migrate(url), run_migrate(url))
        for code, stdout, stderr in results:
            assert code == 0, stderr
            assert "database is up to date" in stdout
        applied = [line for _, stdout, _ in results for line in stdout.splitlines()]
        for component, version in EVERY_STEP:  # whoever came second found them recorded
            assert sum(line.startswith(f"applied {component} {version}:") for line in applied) == 1
        async with open_pool(url, max_size=1) as pool:
            assert await recorded(pool) == EVERY_STEP


def status_rows(stdout: str) -> dict[tuple[str, int], str]:
    rows: dict[tuple[str, int], Any] = {}
    for line in stdout.splitlines():
        if line.startswith(("agent ", "bot ")):
            component, version, state, *_ = line.split()
            rows[(component, int(version))] = state
    return rows


async def test_status_lists_applied_and_pending_steps_and_changes_nothing(
    database_url: str,
) -> None:
    async with fresh_database(database_url, "mig") as url:
        async with open_pool(url, max_size=1) as pool:
            await migrate(pool, LEGACY_STATEMENTS)  # an old database: nothing recorded yet
        code, stdout, stderr = await run_migrate(url, "--status")
        assert code == 0, stderr
        assert status_rows(stdout) == dict.fromkeys(EVERY_STEP, "pending")
        assert "drop the unused pending_for indexes" in stdout
        assert "checkpoints: 0 of" in stdout
        async with open_pool(url, max_size=2) as pool:  # the lock holder, and setup()
            assert await indexes(pool) >= PENDING_FOR_INDEXES  # nothing was run
            await migrations.migrate_agent(pool)
            await migrate_bot(pool)
        code, stdout, stderr = await run_migrate(url, "--status")
        assert code == 0, stderr
        assert status_rows(stdout) == dict.fromkeys(EVERY_STEP, "applied")
        known = len(PooledPostgresSaver.MIGRATIONS)
        assert f"checkpoints: {known} of {known}" in stdout
