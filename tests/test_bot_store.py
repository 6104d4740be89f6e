"""The review rows' statements (``bot.store.BotStore``) one by one, on real PostgreSQL: a claim
stores the decision it makes and refuses a second one; a released claim can be made again; a
vote counts only for the version and digest it approved, once per person; an edit needs the
version it was made on; a review is settled once; a copy of the card is recorded once and says
whether the review moved on; a claim being applied keeps beating (a failed beat is logged), so
no sweeper takes it over.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.audit import AuditEvent
from bot.migrations import migrate_bot
from bot.store import BotStore, Expired, ReviewRow
from graph import ReviewRequest
from graph.db import open_pool
from graph.decisions import Approve, Edit, Feedback
from tests.support.bot_harness import ALICE, BOB, CAROL

HOUR = 3600.0


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[BotStore]:
    async with open_pool(database_url, max_size=4) as pool:
        await migrate_bot(pool)
        yield BotStore(pool, recover_after_seconds=0.3)


def request() -> ReviewRequest:
    return {
        "question": "ok?",
        "tool_call": {"name": "record_note", "args": {"note": "x"}, "id": "call-1"},
        "tool": {"name": "record_note", "description": "", "args_schema": {}},
        "requested_by": CAROL,
    }


async def new_review(store: BotStore) -> str:
    ref = await store.add_review(
        f"thread-{uuid.uuid4().hex}", "int-1", "T1", "C1", "1.0", request(), ttl_seconds=HOUR
    )
    assert ref is not None
    return ref


async def settle(store: BotStore, ref: str) -> None:
    """The database is shared: leave nothing pending or deciding for other tests' sweeps."""
    await store.claim(ref, Feedback("done", ALICE))
    await store.finish(ref, AuditEvent("feedback", "t", "int-1", "call-1", "store_test"))


def decided(row: ReviewRow | Expired | None) -> dict[str, Any]:
    assert isinstance(row, ReviewRow), row
    keys = ("status", "action", "decided_by", "edited_args", "feedback", "args_digest")
    return {key: getattr(row, key) for key in (*keys, "decision_detail")}


async def test_a_claim_stores_its_decision_and_refuses_a_second(store: BotStore) -> None:
    ref = await new_review(store)
    claimed = await store.claim(ref, Approve(ALICE, "d1"), detail="grant g1")
    assert decided(claimed) == {
        "status": "deciding",
        "action": "continue",
        "decided_by": ALICE,
        "edited_args": None,
        "feedback": None,
        "args_digest": "d1",
        "decision_detail": "grant g1",
    }
    assert isinstance(claimed, ReviewRow) and claimed.decided_at is not None
    assert claimed.decision == Approve(ALICE, "d1")
    assert await store.claim(ref, Feedback("no", BOB)) is None
    assert decided(await store.get(ref)) == decided(claimed)  # the loser stored nothing
    await store.release(ref)
    released = await store.get(ref)
    assert released is not None and released.status == "pending"
    assert (released.action, released.decided_by, released.decided_at) == (None, None, None)
    edit = await store.claim(ref, Edit({"note": "y"}, BOB, "d2"))
    assert decided(edit) == {
        "status": "deciding",
        "action": "update",
        "decided_by": BOB,
        "edited_args": {"note": "y"},
        "feedback": None,
        "args_digest": "d2",
        "decision_detail": None,
    }
    await store.release(ref)
    feedback = await store.claim(ref, Feedback("not now", BOB))
    assert decided(feedback)["feedback"] == "not now"
    assert decided(feedback)["args_digest"] is None
    await store.finish(ref, AuditEvent("feedback", "t", "int-1", "call-1", "store_test"))
    settled = await store.get(ref)
    assert settled is not None and (settled.status, settled.action) == ("decided", "feedback")
    assert await store.claim(ref, Approve(ALICE)) is None


async def test_a_vote_counts_once_for_its_version_and_digest(store: BotStore) -> None:
    ref = await new_review(store)
    assert await store.approve(ref, 0, ALICE, "d1") == [ALICE]
    assert await store.approve(ref, 0, ALICE, "d1") == [ALICE]  # once per person
    assert await store.approve(ref, 0, BOB, "d1") == [ALICE, BOB]
    assert await store.approve(ref, 0, CAROL, "d2") == [CAROL]  # other arguments
    assert await store.approve(ref, 1, CAROL, "d1") is None  # a version never proposed
    assert await store.approvals(ref, 0) == [ALICE, BOB, CAROL]
    assert await store.approve("no-such-ref", 0, ALICE, "d1") is None
    edited = await store.propose_edit(ref, 0, {"note": "y"}, BOB)
    assert isinstance(edited, ReviewRow)
    assert (edited.version, edited.proposed_edit, edited.proposed_by) == (1, {"note": "y"}, BOB)
    assert await store.propose_edit(ref, 0, {"note": "z"}, ALICE) is None  # behind the edit
    assert await store.approve(ref, 0, ALICE, "d1") is None  # a superseded proposal
    assert await store.approve(ref, 1, ALICE, "d3") == [ALICE]
    await settle(store, ref)
    assert await store.approve(ref, 1, BOB, "d3") is None  # decided meanwhile
    assert await store.propose_edit(ref, 1, {"note": "z"}, ALICE) is None


async def test_a_review_is_settled_once_with_what_was_decided_elsewhere(store: BotStore) -> None:
    ref = await new_review(store)
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    event = AuditEvent("approved", "t", "int-1", "call-1", "store_test")
    await store.finish(ref, event, action="continue", by=BOB, at=at)
    row = await store.get(ref)
    assert row is not None
    assert (row.status, row.action, row.decided_by, row.decided_at) == (
        "decided",
        "continue",
        BOB,
        at,
    )
    await store.finish(ref, event, action="feedback", by=ALICE)
    again = await store.get(ref)
    assert again is not None and (again.action, again.decided_by) == ("continue", BOB)


async def test_each_copy_of_a_card_is_recorded_once_and_says_if_the_review_moved_on(
    store: BotStore,
) -> None:
    ref = await new_review(store)
    assert not await store.add_copy(ref, "2.0")
    assert not await store.add_copy(ref, "2.0")
    assert not await store.add_copy(ref, "3.0")
    row = await store.get(ref)
    assert row is not None and (row.message_ts, row.messages) == ("2.0", ("2.0", "3.0"))
    assert await store.get(ref + "\x00") is None and await store.get("no-such-ref") is None
    await store.approve(ref, 0, ALICE, "d1")
    assert await store.add_copy(ref, "4.0")  # a vote the new copy does not show
    await settle(store, ref)
    assert await store.add_copy(ref, "5.0")


async def test_a_claim_being_applied_beats_again_and_again(store: BotStore) -> None:
    """Beats keep coming while the block runs (a sweeper takes over only a claim whose
    heartbeat and claim are both old). The claim stays fresh here: a backdated one would be
    taken over by the sweeps of tests running beside this one on the same database."""
    ref = await new_review(store)
    assert store.heartbeat_seconds == pytest.approx(0.1)
    await store.claim(ref, Approve(ALICE, "d1"))
    async with store.deciding(ref):
        first = await beaten(store, ref, after=None)
        assert await beaten(store, ref, after=first) > first
    await store.finish(ref, AuditEvent("approved", "t", "int-1", "call-1", "store_test"))


async def test_a_beat_that_fails_is_logged_and_the_work_goes_on(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_pool(database_url, max_size=1) as pool:
        store = BotStore(pool, recover_after_seconds=0.3)
        async with store.deciding("r-1"):
            await pool.close()  # every beat from here on fails
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if beats_failed(caplog):
                    break
                await asyncio.sleep(store.heartbeat_seconds / 4)
    [record, *_] = beats_failed(caplog)
    assert record.getMessage() == "could not refresh the heartbeat of ['r-1']"
    assert record.exc_info


def beats_failed(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bot.store"]


async def beaten(
    store: BotStore, ref: str, *, after: datetime | None, within: float = 10.0
) -> datetime:
    """Wait (bounded) until the review's heartbeat is written (after ``after``); its time."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with store.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT heartbeat_at FROM slack_reviews WHERE ref = %s", (ref,)
            )
            row = await cursor.fetchone()
        beat = None if row is None else row["heartbeat_at"]
        if isinstance(beat, datetime) and (after is None or beat > after):
            return beat
        await asyncio.sleep(store.heartbeat_seconds / 4)
    raise AssertionError(f"no heartbeat after {after} within {within:.0f}s")


def test_a_rows_messages_its_channel_and_its_expiry() -> None:
    request_: Any = {}
    row = ReviewRow(
        *("r", "t", "i", "T1", "C1", "1.0", "2.0", "record_note", request_, "pending"),
        *(None, None, None),
        message_copies=("3.0", "2.0", "4.0"),
    )
    assert row.messages == ("2.0", "3.0", "4.0")
    assert ReviewRow.from_row({**vars(row), "message_ts": None}).messages == ("3.0", "2.0", "4.0")
    assert row.card_channel_id == "C1"
    assert ReviewRow.from_row({**vars(row), "card_channel": "C0FIN"}).card_channel_id == "C0FIN"
    at = datetime(2026, 12, 1, tzinfo=UTC)
    assert Expired(ReviewRow.from_row({**vars(row), "expires_at": at})).at == at
    assert abs(Expired(row).at - datetime.now(UTC)) < timedelta(minutes=1)  # none stored: now
    listed = ReviewRow.from_row({**vars(row), "message_copies": None, "escalate_to": ["S1"]})
    assert (listed.message_copies, listed.escalate_to) == ((), ("S1",))


async def test_a_review_never_shown_is_found_and_a_repaint_is_remembered(store: BotStore) -> None:
    thread = f"thread-{uuid.uuid4().hex}"
    ref = await store.add_review(thread, "int-1", "T1", "C1", "1.0", request(), ttl_seconds=HOUR)
    assert ref is not None
    assert await store.unposted_review(thread, "int-1") is None  # its poster may still post it
    assert await store.unposted_review(thread, "int-1", older_than_seconds=0) == ref
    assert await store.unposted_review(thread, "int-2", older_than_seconds=0) is None
    await store.add_copy(ref, "2.0")
    assert await store.unposted_review(thread, "int-1", older_than_seconds=0) is None
    await store.mark_repaint(ref)
    assert (row := await store.get(ref)) is not None and row.needs_sync
    await store.mark_repaint(ref, unsynced=False)
    assert (row := await store.get(ref)) is not None and not row.needs_sync
    await settle(store, ref)


async def test_every_set_of_arguments_a_thread_carried_is_listed_newest_first(
    store: BotStore,
) -> None:
    thread = f"thread-{uuid.uuid4().hex}"
    first = await store.add_review(thread, "int-1", "T1", "C1", "1.0", request(), ttl_seconds=HOUR)
    other: Any = {**request(), "tool_call": {"name": "send", "args": {"to": "a"}, "id": "c2"}}
    second = await store.add_review(thread, "int-2", "T1", "C1", "1.0", other, ttl_seconds=HOUR)
    assert first is not None and second is not None
    await store.propose_edit(second, 0, {"to": "b"}, BOB)
    await store.claim(second, Edit({"to": "c"}, BOB))
    assert await store.thread_arguments(thread) == [
        ("send", [{"to": "a"}, {"to": "c"}, {"to": "b"}]),
        ("record_note", [{"note": "x"}]),
    ]
    assert await store.thread_arguments(thread, limit=1) == [
        ("send", [{"to": "a"}, {"to": "c"}, {"to": "b"}])
    ]
    await store.finish(second, AuditEvent("edited", "t", "int-2", "c2", "store_test"))
    await settle(store, first)
