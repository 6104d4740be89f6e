"""The per-thread lease: released after every run, carrying the decision log's "applied" mark in
the same statement, and released even when that rider fails."""

from __future__ import annotations

from typing import Any, LiteralString

from graph import AgentService, RunOutcome


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
