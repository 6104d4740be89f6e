"""The audit trail against a real PostgreSQL: what goes in comes out, filtered and in order,
and the database itself refuses to change or delete history."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bot.audit import AuditEvent, AuditLog
from bot.migrations import migrate_bot
from bot.store import BotStore
from graph.db import Pool, open_pool
from graph.decisions import Approve


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    async with open_pool(database_url, max_size=4) as pool:
        await migrate_bot(pool)
        await migrate_bot(pool)  # idempotent: a second start-up changes nothing
        yield pool


def unique(prefix: str) -> str:
    """The table is shared by every test and cannot be emptied, so each test owns its names."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def event(tool: str, outcome: str = "requested", **fields: object) -> AuditEvent:
    base: dict[str, object] = {
        "thread_id": "slack:T1:C1:1.0",
        "interrupt_id": "int-1",
        "tool_call_id": "call-1",
    }
    return AuditEvent(outcome=outcome, tool_name=tool, **(base | fields))  # type: ignore[arg-type]


async def test_records_come_back_oldest_first_with_every_field(pool: Pool) -> None:
    log = AuditLog(pool)
    tool = unique("post_message")
    before = datetime.now(UTC)
    await log.record(
        event(
            tool,
            proposed_args={"channel": "#general", "token": "[redacted]"},
            requested_by="U0CAROL",
            channel_id="C0GENERAL",
            message_ts="1700000000.000100",
        )
    )
    await log.record(
        event(
            tool,
            "edited",
            proposed_args={"channel": "#general"},
            edited_args={"channel": "#random"},
            executed_args={"channel": "#random"},
            requested_by="U0CAROL",
            decided_by="U0ALICE",
            detail="changed channel",
        )
    )
    rows = await log.query(tool=tool)
    assert [r["outcome"] for r in rows] == ["requested", "edited"]
    first, second = rows
    assert first["proposed_args"] == {"channel": "#general", "token": "[redacted]"}
    assert first["edited_args"] is None and first["decided_by"] is None
    assert first["channel_id"] == "C0GENERAL" and first["message_ts"] == "1700000000.000100"
    assert second["edited_args"] == second["executed_args"] == {"channel": "#random"}
    assert second["detail"] == "changed channel"
    assert before <= first["at"] <= second["at"] <= datetime.now(UTC)
    assert first["id"] < second["id"]
    assert {"thread_id", "interrupt_id", "tool_call_id", "tool_name"} <= set(first)


async def test_filters_combine(pool: Pool) -> None:
    log = AuditLog(pool)
    tool, other = unique("invite_users"), unique("create_channel")
    asker, approver = unique("U0ASK").upper(), unique("U0OK").upper()
    await log.record(event(tool, requested_by=asker))
    await log.record(event(tool, "approved", requested_by=asker, decided_by=approver))
    await log.record(event(other, "refused", requested_by=asker, decided_by="U0MALLORY"))
    await log.record(event(other, "feedback", requested_by="U0SOMEONE", decided_by=approver))

    by_asker = await log.query(user=asker)
    assert [r["outcome"] for r in by_asker] == ["requested", "approved", "refused"]
    by_approver = await log.query(user=approver)  # deciders match too
    assert [r["outcome"] for r in by_approver] == ["approved", "feedback"]
    assert [r["tool_name"] for r in await log.query(user=approver, tool=other)] == [other]
    assert [r["decided_by"] for r in await log.query(user=asker, outcome="refused")] == [
        "U0MALLORY"
    ]
    assert await log.query(tool=tool, outcome="expired") == []


async def test_time_window_and_limit(pool: Pool) -> None:
    log = AuditLog(pool)
    tool = unique("weather_search")
    for number in range(5):
        await log.record(event(tool, detail=str(number)))
    rows = await log.query(tool=tool)
    moments = [r["at"] for r in rows]
    assert moments == sorted(moments)

    # since is inclusive, until exclusive: consecutive windows never count an event twice
    window = await log.query(tool=tool, since=moments[1], until=moments[3])
    assert [r["detail"] for r in window] == ["1", "2"]
    naive = moments[3].astimezone(UTC).replace(tzinfo=None)  # naive means UTC
    assert [r["detail"] for r in await log.query(tool=tool, since=naive)] == ["3", "4"]
    later = moments[-1] + timedelta(seconds=1)
    assert await log.query(tool=tool, since=later) == []

    # limit keeps the latest events, still oldest first
    assert [r["detail"] for r in await log.query(tool=tool, limit=2)] == ["3", "4"]
    assert await log.query(tool=tool, limit=0) == []
    with pytest.raises(ValueError, match="negative"):
        await log.query(tool=tool, limit=-1)


async def test_unknown_outcome_is_refused(pool: Pool) -> None:
    tool = unique("post_message")
    with pytest.raises(ValueError, match="unknown audit outcome 'approve'"):
        await AuditLog(pool).record(event(tool, "approve"))
    assert await AuditLog(pool).query(tool=tool) == []


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("UPDATE audit_events SET decided_by = 'U0MALLORY' WHERE tool_name = %s", "UPDATE"),
        ("DELETE FROM audit_events WHERE tool_name = %s", "DELETE"),
        ("TRUNCATE audit_events", "TRUNCATE"),
    ],
)
async def test_the_database_refuses_to_rewrite_history(
    pool: Pool, statement: str, operation: str
) -> None:
    log = AuditLog(pool)
    tool = unique("set_channel_topic")
    await log.record(event(tool, "approved", decided_by="U0ALICE"))
    params = (tool,) if "%s" in statement else None
    async with pool.connection() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            await conn.execute(statement, params)
    assert f"audit_events is append-only: {operation} is not allowed" in str(refused.value)
    assert "add a new event" in (refused.value.diag.message_hint or "")
    [row] = await log.query(tool=tool)
    assert row["decided_by"] == "U0ALICE"


async def test_settling_a_review_appends_its_audit_entry_in_the_same_statement(
    pool: Pool,
) -> None:
    """``BotStore.finish(audit=...)``: one statement settles the review and appends the entry;
    an entry the database refuses is dropped (and logged), the review is settled anyway."""
    await migrate_bot(pool)
    store = BotStore(pool)
    tool = unique("post_message")
    request: Any = {
        "question": "ok?",
        "tool_call": {"name": tool, "args": {"text": "hi"}, "id": "call-1"},
        "tool": {"name": tool, "description": "", "args_schema": {}},
        "requested_by": "U0CAROL",
    }
    refs = []
    for thread in (unique("thread"), unique("thread")):
        ref = await store.add_review(thread, "int-1", "T1", "C1", "1.0", request)
        assert ref is not None and await store.claim(ref, Approve("U0ALICE")) is not None
        refs.append(ref)

    await store.finish(refs[0], audit=event(tool, "approved", decided_by="U0ALICE"))
    await store.finish(refs[1], audit=event(tool, "approved", detail="nul \x00 byte"))

    for ref in refs:
        review = await store.get(ref)
        assert review is not None and review.status == "decided"
    rows = await AuditLog(pool).query(tool=tool)
    assert [(r["outcome"], r["decided_by"]) for r in rows] == [("approved", "U0ALICE")]
