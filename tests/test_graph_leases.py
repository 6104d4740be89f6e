"""The per-thread lease: released after every run, carrying the decision log's "applied" mark in
the same statement, and released even when that rider fails."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, LiteralString, cast

import psycopg
import pytest

from graph import AgentService, RunOutcome
from graph.db import Pool
from graph.locks import RELEASE_SQL, Lease, LeaseTimeout, ThreadLeases


async def one_row(service: AgentService, statement: LiteralString, params: tuple[Any, ...]) -> Any:
    async with service.pool.connection() as conn:
        return await (await conn.execute(statement, params)).fetchone()


async def lease_rows(service: AgentService, thread_id: str) -> int:
    row = await one_row(
        service, "SELECT count(*) AS n FROM agent_thread_leases WHERE thread_id = %s", (thread_id,)
    )
    return int(row["n"])


async def test_an_answer_marks_its_decision_applied_and_releases_the_thread(
    offline_agent: AgentService, thread_id: str
) -> None:
    started = await offline_agent.start_turn(thread_id, "what's the weather in sf?", user="U1")
    assert isinstance(started, RunOutcome)
    [review] = started.pending
    decision = {"action": "continue", "by": "U2"}
    done = await offline_agent.answer(thread_id, review.interrupt_id, decision)
    assert isinstance(done, RunOutcome)

    row = await one_row(
        offline_agent,
        "SELECT decided_by, decided_at, applied_at FROM agent_decisions "
        "WHERE thread_id = %s AND interrupt_id = %s",
        (thread_id, review.interrupt_id),
    )
    assert row["decided_by"] == "U2"
    assert row["applied_at"] is not None and row["applied_at"] >= row["decided_at"]
    assert await lease_rows(offline_agent, thread_id) == 0


async def test_a_refused_answer_leaves_no_applied_mark_and_no_lease(
    offline_agent: AgentService, thread_id: str
) -> None:
    started = await offline_agent.start_turn(thread_id, "what's the weather in sf?", user="U1")
    assert isinstance(started, RunOutcome)
    refused = await offline_agent.answer(thread_id, "no-such-interrupt", {"action": "continue"})
    assert not isinstance(refused, RunOutcome)
    row = await one_row(
        offline_agent,
        "SELECT count(*) AS n FROM agent_decisions WHERE thread_id = %s",
        (thread_id,),
    )
    assert row["n"] == 0
    assert await lease_rows(offline_agent, thread_id) == 0


async def test_a_failing_rider_still_releases_the_thread(
    offline_agent: AgentService, thread_id: str
) -> None:
    async with offline_agent.leases.hold(thread_id) as lease:
        assert await lease_rows(offline_agent, thread_id) == 1
        lease.on_release("UPDATE no_such_table SET x = 1 WHERE y = %s", (thread_id,))
    assert await lease_rows(offline_agent, thread_id) == 0
    # and the thread can be held again at once (not after the lease's time to live)
    async with offline_agent.leases.hold(thread_id):
        assert await lease_rows(offline_agent, thread_id) == 1
    assert await lease_rows(offline_agent, thread_id) == 0


async def test_a_replica_waits_for_a_busy_thread_then_gives_up_in_words(
    offline_agent: AgentService, thread_id: str
) -> None:
    """Another replica (its own leases, so no shared in-process lock) waits up to its
    ``wait_seconds`` for the thread, then raises ``LeaseTimeout`` naming the thread and the
    wait; once the holder is gone it gets the thread at once."""
    other = ThreadLeases(offline_agent.pool, wait_seconds=0.5)
    async with offline_agent.leases.hold(thread_id):
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(LeaseTimeout) as timed_out:
            async with other.hold(thread_id):
                raise AssertionError("held a thread another replica holds")
        assert loop.time() - began >= 0.5  # it waited its wait, not less
        assert str(timed_out.value) == f"thread {thread_id} stayed busy for 0.5s"
    async with other.hold(thread_id):
        assert await lease_rows(offline_agent, thread_id) == 1
    assert await lease_rows(offline_agent, thread_id) == 0


async def test_a_short_wait_gives_up_on_a_thread_busy_in_this_process_too(
    offline_agent: AgentService, thread_id: str
) -> None:
    """Retention holds threads through a short-waiting copy of the same leases (the same
    in-process locks): a thread running here must not keep it waiting until the run ends. It
    gives up in the same words as behind another replica, naming the thread."""
    patient = offline_agent.leases
    brief = dataclasses.replace(patient, wait_seconds=0.3)

    async def take() -> None:
        async with brief.hold(thread_id):
            raise AssertionError("held a thread a run in this process holds")

    async with patient.hold(thread_id):
        with pytest.raises(LeaseTimeout) as timed_out:
            await asyncio.wait_for(take(), 30)  # a bound for the test, not a figure
        assert str(timed_out.value) == f"thread {thread_id} stayed busy for 0.3s"
    async with brief.hold(thread_id):  # free again: taken at once
        assert await lease_rows(offline_agent, thread_id) == 1


async def test_an_expired_lease_is_taken_over(offline_agent: AgentService, thread_id: str) -> None:
    """A holder that died leaves its row; once it has expired another replica takes it."""
    async with offline_agent.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO agent_thread_leases (thread_id, holder, expires_at) "
            "VALUES (%s, 'dead:holder', now() - interval '1 second')",
            (thread_id,),
        )
    async with ThreadLeases(offline_agent.pool, wait_seconds=5.0).hold(thread_id) as lease:
        row = await one_row(
            offline_agent,
            "SELECT holder FROM agent_thread_leases WHERE thread_id = %s",
            (thread_id,),
        )
        assert row["holder"] == lease.holder != "dead:holder"
    assert await lease_rows(offline_agent, thread_id) == 0


async def test_a_release_that_cannot_reach_the_database_is_logged_not_raised(
    offline_agent: AgentService, thread_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease then expires by itself; the caller's run is not failed for it."""

    class Unreachable:
        def connection(self) -> Any:
            raise psycopg.OperationalError("connection refused")

    leases = dataclasses.replace(offline_agent.leases, pool=cast(Pool, Unreachable()))
    with caplog.at_level(logging.WARNING, logger="graph.locks"):
        await leases._release(Lease(thread_id, "h"))
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"could not release the lease on thread {thread_id}"
    assert isinstance(record.exc_info, tuple) and record.exc_info[0] is psycopg.OperationalError


async def test_a_release_that_fails_twice_still_does_not_raise(
    offline_agent: AgentService, thread_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A release failing for another reason (taken as the rider's), then the plain release
    failing as well: logged once, never raised into the caller's run."""

    class Failing:
        def connection(self) -> Any:
            raise RuntimeError("no")

    leases = dataclasses.replace(offline_agent.leases, pool=cast(Pool, Failing()))
    with caplog.at_level(logging.WARNING, logger="graph.locks"):
        await leases._release(Lease(thread_id, "h"))
    assert [r.getMessage() for r in caplog.records] == [
        f"could not run the release rider on thread {thread_id}"
    ]


async def test_a_failing_rider_is_logged_and_the_thread_released_without_it(
    offline_agent: AgentService, thread_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="graph.locks"):
        async with offline_agent.leases.hold(thread_id) as lease:
            lease.on_release("UPDATE no_such_table SET x = 1 WHERE y = %s", (thread_id,))
    messages = [r.getMessage() for r in caplog.records if r.name == "graph.locks"]
    assert messages == [f"could not run the release rider on thread {thread_id}"]
    assert await lease_rows(offline_agent, thread_id) == 0


def test_a_release_without_a_rider_is_the_plain_delete() -> None:
    lease = Lease("t1", "h1")
    assert lease.release_statement() == (RELEASE_SQL, ("t1", "h1"))
    lease.on_release("UPDATE x SET y = %s", (1,))
    assert lease.release_statement() == (
        "WITH rider AS (UPDATE x SET y = %s) " + RELEASE_SQL,
        (1, "t1", "h1"),
    )
