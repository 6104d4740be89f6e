"""The Slack side of binding approvals to arguments: each claim and each quorum vote records the
digest of the arguments approved; votes on different digests never add up (an edit between two
approvals); a stored edit changed under its claim is refused by the agent; the audit trail shows
the digest (but not for a call with a redacted argument)."""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from langchain_core.messages import AIMessage

from bot.audit import AuditLog
from bot.migrations import migrate_bot
from bot.store import BotStore, ReviewRow
from graph import Edit, ReviewRequest
from graph.db import Pool, open_pool
from graph.digest import args_digest
from sandbox.server import Sandbox
from tests.conftest import AgentFactory
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    card_recorded,
    eventually,
    review_messages,
    review_ref,
    running_slack_env,
)
from tests.support.counting_tools import RUNS, registry_with
from tests.support.graph_helpers import outcome, refusal
from tests.support.scripted_model import ScriptedModel, tool_calls

T = TypeVar("T")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    async with open_pool(database_url, max_size=4) as pool:
        await migrate_bot(pool)
        yield pool


def request(args: dict[str, Any], call_id: str = "call-1") -> ReviewRequest:
    return {
        "question": "Is this correct?",
        "tool_call": {"name": "record_note", "args": args, "id": call_id},
        "tool": {"name": "record_note", "description": "", "args_schema": {}},
        "requested_by": "U0CAROL",
    }


async def test_votes_on_different_digests_do_not_add_up(pool: Pool) -> None:
    store = BotStore(pool)
    thread = f"slack:T1:C1:{uuid.uuid4().hex}"
    ref = await store.add_review(thread, "int-1", "T1", "C1", "1.0", request({"note": "a"}))
    assert ref is not None
    first, second = args_digest({"note": "a"}), args_digest({"note": "b"})

    assert await store.approve(ref, 0, "U0ALICE", first) == ["U0ALICE"]
    # the proposal changed under the second voter (same version): not the same approval
    assert await store.approve(ref, 0, "U0BOB", second) == ["U0BOB"]
    assert await store.approve(ref, 0, "U0DAN", first) == ["U0ALICE", "U0DAN"]


async def test_a_vote_for_a_proposal_edited_meanwhile_is_refused(pool: Pool) -> None:
    """Bob approved the original; Carol's edit replaced it; Alice's approval of the original,
    sent from the card as it was before the edit, must not join Bob's and run the original."""
    store = BotStore(pool)
    thread = f"slack:T1:C1:{uuid.uuid4().hex}"
    ref = await store.add_review(thread, "int-1", "T1", "C1", "1.0", request({"note": "a"}))
    assert ref is not None
    original = args_digest({"note": "a"})
    assert await store.approve(ref, 0, "U0BOB", original) == ["U0BOB"]
    edited = await store.propose_edit(ref, 0, {"note": "b"}, "U0CAROL")
    assert isinstance(edited, ReviewRow) and edited.version == 1

    assert await store.approve(ref, 0, "U0ALICE", original) is None  # stale: nothing stored
    assert await store.approvals(ref, 0) == ["U0BOB"]
    assert await store.approve(ref, 1, "U0ALICE", args_digest({"note": "b"})) == ["U0ALICE"]


async def test_a_stored_edit_changed_under_its_claim_is_refused_and_nothing_runs(
    pool: Pool, agent_factory: AgentFactory
) -> None:
    RUNS.clear()
    model = ScriptedModel([tool_calls(("record_note", {"note": "a"})), AIMessage("done")])
    thread = f"slack:T1:C1:{uuid.uuid4().hex}"
    async with agent_factory(model=model, registry=registry_with()) as agent:
        [review] = outcome(await agent.start_turn(thread, "note it")).pending
        store = BotStore(pool)
        ref = await store.add_review(thread, review.interrupt_id, "T1", "C1", "1.0", review.request)
        assert ref is not None
        approved = {"note": "b"}
        claimed = await store.claim(ref, Edit(approved, "U0ALICE", args_digest(approved)))
        assert isinstance(claimed, ReviewRow)
        async with pool.connection() as conn:  # changed after the approval was recorded
            await conn.execute(
                'UPDATE slack_reviews SET edited_args = \'{"note": "c"}\' WHERE ref = %s', (ref,)
            )
        row = await store.get(ref)
        assert row is not None and row.args_digest == args_digest(approved)
        assert row.decision is not None

        refused = refusal(await agent.answer(thread, review.interrupt_id, row.decision))
        assert refused.reason == "args_changed"
        assert RUNS == []
        unchanged = dataclasses.replace(row, edited_args=approved).decision
        assert unchanged is not None
        outcome(await agent.answer(thread, review.interrupt_id, unchanged))
        assert RUNS == ["b"]


def _policy(text: str) -> Path:
    path = Path(tempfile.mkdtemp()) / "policy.toml"
    path.write_text(text)
    return path


def message_of(sandbox: Sandbox, thread: str, ts: str) -> dict[str, Any]:
    return next(m for m in sandbox.replies("C0GENERAL", thread) if m["ts"] == ts)


@asynccontextmanager
async def quorum_note(database_url: str) -> AsyncIterator[tuple[SlackEnv, str, dict[str, Any]]]:
    """Carol asks for a note that needs two approvals: the bot, the thread and its card."""
    RUNS.clear()
    model = ScriptedModel([tool_calls(("record_note", {"note": "hi"})), AIMessage("noted")])
    policy = "[tools.record_note]\nquorum = 2\n"
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=_policy(policy)
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note hi")
        [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        await card_recorded(env, review)  # each change below then paints it once
        yield env, thread, review


async def test_a_quorum_counts_only_approvals_of_the_arguments_that_run(
    database_url: str,
) -> None:
    """Alice approves, Bob edits (his approval of the edit), Carol approves: the edit runs on
    Bob's and Carol's approvals, each vote and the decision recorded with its digest."""
    async with quorum_note(database_url) as (env, thread, review):
        sandbox = env.sandbox
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        audit = AuditLog(env.bot.pool)

        async def events(outcome: str) -> list[dict[str, Any]]:
            return [
                e
                for e in await audit.query(tool="record_note", outcome=outcome)
                if e["channel_id"] == "C0GENERAL" and e["message_ts"] == review["ts"]
            ]

        await eventually(lambda: events("approval_recorded"))
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
        assert (await sandbox.submit_modal(BOB, {"arg:note": "hi team"})).closed
        # Carol approves from the card as it now shows Bob's edit (one from before is refused)
        await sandbox.wait_for(
            lambda: "hi team" in str(message_of(sandbox, thread, review["ts"])["blocks"])
        )
        assert RUNS == []  # Alice's approval was of other arguments: still one of two
        await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: RUNS == ["hi team"] or None)

        edit = args_digest({"note": "hi team"})
        votes = await events("approval_recorded")
        assert [(v["decided_by"], v["args_digest"]) for v in votes] == [
            (ALICE, args_digest({"note": "hi"})),
            (BOB, edit),
        ]
        [decided] = await eventually(lambda: events("edited"))
        assert decided["args_digest"] == edit
        assert decided["detail"] == f"{BOB}, {CAROL}"


def test_the_audit_shows_no_digest_for_a_call_with_a_redacted_argument() -> None:
    """A digest of a short secret can be reversed by trying guesses: the trail leaves it out
    for such calls (the review row keeps it, beside the arguments themselves)."""
    from bot.policy import ToolPolicy
    from bot.review.binding import audited_digest

    row = ReviewRow(
        ref="r",
        thread_id="t",
        interrupt_id="i",
        team_id="T1",
        channel_id="C1",
        thread_ts="1.0",
        message_ts=None,
        tool_name="record_note",
        request=request({"note": "1234", "tag": "x"}),
        status="deciding",
        action="continue",
        decided_by="U0ALICE",
        decided_at=None,
    )
    digest = args_digest({"note": "1234", "tag": "x"})
    assert audited_digest(digest, row, ToolPolicy()) == digest
    assert audited_digest(digest, row, ToolPolicy(redact=frozenset({"note"}))) is None
    edited = dataclasses.replace(row, action="update", edited_args={"secret": "1"})
    assert audited_digest(digest, edited, ToolPolicy(redact=frozenset({"secret"}))) is None


async def test_an_approve_from_a_card_painted_before_an_edit_is_refused(
    database_url: str,
) -> None:
    """Bob's edit replaced the proposal (his approval of it) but Alice's card, whose repaint
    Slack did not take, still shows the original: her Approve must not count for the edit she
    never saw (it would reach the quorum and run it). She is told, and her card repainted."""
    async with quorum_note(database_url) as (env, thread, review):
        sandbox = env.sandbox
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
        updates = len(sandbox.calls_of("chat.update"))
        sandbox.web_api.fail_next("chat.update", 500, 500, 500)  # the SDK's tries, all refused
        assert (await sandbox.submit_modal(BOB, {"arg:note": "hi team"})).closed
        await sandbox.wait_for(lambda: len(sandbox.calls_of("chat.update")) >= updates + 3, 15)
        stale = next(m for m in sandbox.replies("C0GENERAL", thread) if m["ts"] == review["ts"])
        assert "hi team" not in str(stale["blocks"])  # Alice still sees the original

        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        told = await sandbox.wait_for(
            lambda: [e for e in sandbox.ephemerals(ALICE) if "changed this review" in e["text"]]
        )
        assert told
        card = await sandbox.wait_for(
            lambda: next(
                (
                    m
                    for m in sandbox.replies("C0GENERAL", thread)
                    if m["ts"] == review["ts"] and "hi team" in str(m["blocks"])
                ),
                None,
            )
        )
        assert "1 of 2 approvals" in str(card["blocks"])  # Bob's alone: Alice's did not count
        assert RUNS == []
        store = BotStore(env.bot.pool)
        row = await store.get(review_ref(card))
        assert row is not None and row.status == "pending" and row.version == 1
        assert await store.approvals(row.ref, 1) == [BOB]

        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: RUNS)
        assert RUNS == ["hi team"]  # now she saw it: her approval counts, and the edit runs


async def test_an_edit_form_submitted_after_the_proposal_changed_is_refused(
    database_url: str,
) -> None:
    """Alice opens Edit; Bob's edit replaces the proposal before she submits. Her form showed
    the old proposal (and keeps what it hides, such as redacted values, as proposed): it is
    bound to what it showed, so submitted now it is refused in the form and nothing changes."""
    async with quorum_note(database_url) as (env, _thread, review):
        sandbox = env.sandbox
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
        assert (await sandbox.submit_modal(BOB, {"arg:note": "hi team"})).closed
        store = BotStore(env.bot.pool)

        async def edited() -> list[ReviewRow]:
            row = await store.get(review_ref(review))
            return [row] if row is not None and row.version == 1 else []

        [row] = await eventually(edited)  # Bob's edit is applied after Slack's ack

        refused = await sandbox.submit_modal(ALICE, {"arg:note": "hi all"})
        assert not refused.closed
        assert any("changed this review" in e for e in refused.errors.values()), refused
        after = await store.get(row.ref)
        assert after is not None and after.version == 1
        assert after.proposed_edit == {"note": "hi team"}
        assert await store.approvals(row.ref, 1) == [BOB] and RUNS == []
