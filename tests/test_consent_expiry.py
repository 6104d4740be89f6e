"""Expiry fails closed at the moment of the click, not at the next sweep.

Every path that can apply a decision (Approve, an Edit or Feedback submit, the approval that
completes a quorum, the sweeper finishing a stuck claim) refuses an expired review in the very
statement that would claim it; the clicker is told when it expired, and the review is expired
at once: the agent hears the call was not run, the message says *Expired*. The bots here sweep
once an hour, so the sweeper cannot be what refuses the click.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from bot.audit import AuditEvent, AuditLog
from bot.migrations import migrate_bot
from bot.store import BotStore, Expired, ReviewRow
from bot.sweeper import sweep_once
from graph.db import Pool, open_pool
from graph.decisions import Approve, Edit, Expire, Feedback
from sandbox.server import Sandbox
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    review_ref,
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls

HOUR = 3600.0


def told_model() -> ScriptedModel:
    return ScriptedModel(
        [
            tool_calls(("record_note", {"note": "ship it"})),
            lambda seen: AIMessage(content=f"told: {seen[-1].content}"),
        ]
    )


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text('[tools.record_note]\nttl = "2s"\n')
    return path


def told_env(database_url: str, policy: Path) -> AbstractAsyncContextManager[SlackEnv]:
    """The bot with ``policy`` and the told model, its sweeper passing at start and then hourly
    (the tests sweep when they need it); the notes recorded so far forgotten."""
    RUNS.clear()
    return running_slack_env(
        database_url,
        model=told_model(),
        registry=registry_with(),
        policy_file=policy,
        sweep_seconds=HOUR,
    )


@pytest.fixture
async def env(database_url: str, policy: Path) -> AsyncIterator[SlackEnv]:
    async with told_env(database_url, policy) as slack_env:
        yield slack_env


async def open_review(sandbox: Sandbox, user: str = CAROL) -> tuple[str, dict[str, Any], str]:
    thread = await sandbox.post_message(user, "#general", f"<@{BOT}> note: ship it")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    return thread, review, review_ref(review)


async def until_lapsed(store: BotStore, ref: str, within: float = 20.0) -> None:
    """Wait (bounded) until the database's clock says the review's time ran out."""
    deadline = time.monotonic() + within
    while not (row := await store.get(ref)) or not row.lapsed:
        assert time.monotonic() < deadline, "the review never expired"
        await asyncio.sleep(0.1)


async def lapse_now(pool: Pool, ref: str) -> None:
    """Let a review's time run out now (without waiting out its ttl)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET expires_at = now() - interval '1 second' WHERE ref = %s",
            (ref,),
        )


def message_text(sandbox: Sandbox, thread: str, ts: str) -> str:
    return text_of(next(m for m in sandbox.replies("C0GENERAL", thread) if m["ts"] == ts))


async def expired_and_told(sandbox: Sandbox, thread: str, review: dict[str, Any]) -> None:
    """The review was expired at once: *Expired* on the message, the agent told."""
    await sandbox.wait_for(lambda: "Expired" in message_text(sandbox, thread, review["ts"]))
    told = await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "told:" in text_of(m)]
    )
    assert "was not run" in text_of(told[0])
    assert not review_messages(sandbox, "C0GENERAL", thread)


async def outcomes(env: SlackEnv, thread: str) -> list[tuple[str, str | None]]:
    rows = await AuditLog(env.bot.service.pool).query(tool="record_note")
    return [(r["outcome"], r["decided_by"]) for r in rows if r["thread_id"].endswith(thread)]


async def test_approve_after_expiry_runs_nothing_and_expires_the_review_at_once(
    env: SlackEnv,
) -> None:
    sandbox, store = env.sandbox, env.bot.flow.store
    thread, review, ref = await open_review(sandbox)
    await until_lapsed(store, ref)

    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE))
    assert "This review expired at" in refusal["text"] and "nothing was run" in refusal["text"]
    await expired_and_told(sandbox, thread, review)
    assert RUNS == []
    row = await store.get(ref)
    assert row is not None and row.status == "decided" and row.action == "expired"
    assert await outcomes(env, thread) == [
        ("requested", None),
        ("refused", ALICE),
        ("expired", None),
    ]


@pytest.mark.parametrize(
    ("button", "values"),
    [("review_edit", {"arg:note": "ship it now"}), ("review_feedback", None)],
)
async def test_a_modal_submitted_after_expiry_shows_the_expiry_as_its_error(
    env: SlackEnv, button: str, values: dict[str, Any] | None
) -> None:
    sandbox = env.sandbox
    thread, review, ref = await open_review(sandbox)
    async with env.bot.service.pool.connection() as conn:  # open the form with time to spare
        await conn.execute(
            "UPDATE slack_reviews SET expires_at = now() + interval '1 hour' WHERE ref = %s",
            (ref,),
        )
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], button)
    await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    await lapse_now(env.bot.service.pool, ref)

    submitted = await sandbox.submit_modal(
        ALICE, values if values is not None else {"feedback": "use the other note"}
    )
    assert not submitted.closed
    [error] = submitted.errors.values()
    assert error.startswith("This review expired at") and "nothing was run" in error
    await expired_and_told(sandbox, thread, review)
    assert RUNS == []


async def test_the_approval_that_would_complete_a_quorum_is_refused_after_expiry(
    database_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[tools.record_note]\nquorum = 2\nttl = "1h"\n')
    async with told_env(database_url, policy) as env:
        sandbox, store = env.sandbox, env.bot.flow.store
        thread, review, ref = await open_review(sandbox)
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: "1 of 2" in message_text(sandbox, thread, review["ts"]))
        await lapse_now(env.bot.service.pool, ref)

        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(BOB))
        assert "This review expired at" in refusal["text"]
        await expired_and_told(sandbox, thread, review)
        assert RUNS == []
        row = await store.get(ref)
        assert row is not None
        assert await store.approvals(ref, row.version) == [ALICE]  # Bob's was not recorded


async def test_a_stuck_claim_recovered_after_expiry_fails_closed(env: SlackEnv) -> None:
    sandbox, flow = env.sandbox, env.bot.flow
    thread, review, ref = await open_review(sandbox)
    await handled(env, thread)
    # A process claimed Alice's approval in time and died before applying it; by the time a
    # sweeper finds the claim, the review has expired.
    assert isinstance(await flow.store.claim(ref, Approve(ALICE)), ReviewRow)
    await lapse_now(env.bot.service.pool, ref)
    await sweep_once(flow, stuck_after=0)
    await expired_and_told(sandbox, thread, review)
    assert RUNS == []


# -- the store's statements, one by one ----------------------------------------------------


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[BotStore]:
    async with open_pool(database_url, max_size=2) as pool:
        await migrate_bot(pool)
        yield BotStore(pool)


async def expired_review(store: BotStore) -> str:
    request: Any = {
        "question": "ok?",
        "tool_call": {"name": "record_note", "args": {"note": "x"}, "id": "call-1"},
        "tool": {"name": "record_note", "description": "", "args_schema": {}},
        "requested_by": CAROL,
    }
    ref = await store.add_review(
        f"thread-{uuid.uuid4().hex}", "int-1", "T1", "C1", "1.0", request, ttl_seconds=HOUR
    )
    assert ref is not None
    await lapse_now(store.pool, ref)
    return ref


async def test_no_statement_decides_an_expired_review(store: BotStore) -> None:
    ref = await expired_review(store)
    for refusal in (
        await store.claim(ref, Approve(ALICE)),
        await store.claim(ref, Edit({"note": "y"}, ALICE)),
        await store.claim(ref, Feedback("no", ALICE)),
        await store.approve(ref, 0, ALICE),
        await store.propose_edit(ref, 0, {"note": "y"}, ALICE),
    ):
        assert isinstance(refusal, Expired) and refusal.review.ref == ref
    row = await store.get(ref)
    assert row is not None and row.status == "pending" and row.proposed_edit is None
    assert row.version == 0 and await store.approvals(ref, 0) == []
    # ... except the expiry itself, which claims only what has expired
    assert (await store.claim(ref, Expire("too late"))) is not None
    live = await store.add_review(
        f"thread-{uuid.uuid4().hex}", "int-1", "T1", "C1", "1.0", row.request, ttl_seconds=HOUR
    )
    assert live is not None and await store.claim(live, Expire("early")) is None
    # The database is shared: leave nothing pending or deciding for other tests' sweeps.
    assert await store.claim(live, Approve(ALICE)) is not None
    for done in (ref, live):
        await store.finish(done, AuditEvent("approved", "t", "int-1", "call-1", "store_test"))


async def handled(env: SlackEnv, thread: str, within: float = 10.0) -> None:
    """Wait (bounded) until the mention that started ``thread`` is marked answered."""
    deadline = time.monotonic() + within
    while True:
        async with env.bot.service.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*) AS open FROM slack_events WHERE status <> 'done' "
                    "AND body->'event'->>'ts' = %s",
                    (thread,),
                )
            ).fetchone()
        if row is not None and row["open"] == 0:
            return
        assert time.monotonic() < deadline, "the mention was never marked answered"
        await asyncio.sleep(0.05)


class Crash(BaseException):
    """The process dying mid-tool: not an error the tool node turns into a result."""


CRASHES: list[str] = []


@tool
def fragile_note(note: str) -> str:
    """Record a note; the first run dies half-way (as a killed process would)."""
    if not CRASHES:
        CRASHES.append(note)
        raise Crash
    RUNS.append(note)
    return f"recorded: {note}"


async def test_a_decision_the_agent_took_in_time_still_runs_when_recovered_after_expiry(
    database_url: str, policy: Path
) -> None:
    """Alice approved in time, the agent took her decision in, and the process died before
    the tool finished. The sweeper finds the claim after the deadline: the agent's own record
    wins over the expiry, so the run is finished (not left half-way) and audited as Alice's."""
    RUNS.clear()
    CRASHES.clear()
    model = ScriptedModel([tool_calls(("fragile_note", {"note": "ship it"})), AIMessage("noted")])
    async with running_slack_env(
        database_url,
        model=model,
        registry=registry_with(fragile_note),
        policy_file=policy,
        sweep_seconds=HOUR,
    ) as env:
        sandbox, flow = env.sandbox, env.bot.flow
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note: ship it")
        [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        ref = review_ref(review)
        await handled(env, thread)  # so the sweep below cannot finish the run from the mention
        claimed = await flow.store.claim(ref, Approve(ALICE))
        assert isinstance(claimed, ReviewRow)
        with pytest.raises(Crash):
            await flow.service.answer(
                claimed.thread_id, claimed.interrupt_id, {"action": "continue", "by": ALICE}
            )
        await lapse_now(env.bot.service.pool, ref)
        await sweep_once(flow, stuck_after=0)
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "noted" in text_of(m)]
        )
        assert RUNS == ["ship it"]
        rows = await AuditLog(env.bot.service.pool).query(tool="fragile_note")
        mine = [(r["outcome"], r["decided_by"]) for r in rows if r["thread_id"].endswith(thread)]
        assert mine == [("requested", None), ("approved", ALICE)]
