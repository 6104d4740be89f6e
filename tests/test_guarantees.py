"""The mechanisms behind "exactly once", each pinned on its own.

Two people press *different* buttons on one review at the same moment, each click landing on
another ``python -m bot`` replica (one PostgreSQL, a round-robin forwarder): one decision runs,
and the review row, the decided message, the audit trail and the metrics all name that person
and that action. Then the two guards apart: the review claim (``bot/store.py``, ``claim``)
refuses a second decision with no lease behind it, and the agent's thread lease
(``graph/locks.py``) refuses a second run of one interrupt with no claim in front of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from langchain_core.messages import AIMessage
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from graph import Approve, Refused, RunOutcome
from tests.conftest import AgentFactory
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    review_messages,
    running_slack_env,
    text_of,
)
from tests.support.chaos import (
    BotProcess,
    Replicas,
    bounded_wait,
    buttons_of,
    review_of,
    running_replicas,
)
from tests.support.counting_tools import RUNS, registry_with
from tests.support.guards import lease_bypassed
from tests.support.scripted_model import ScriptedModel, tool_calls

GENERAL, RANDOM = "C0GENERAL", "C0RANDOM"


@pytest.fixture
async def replicas(database_url: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    async with running_replicas(database_url, tmp_path, "guarantees") as running:
        yield running


async def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def applied_by_action(bots: list[BotProcess]) -> dict[str, float]:
    """``approval_bot_decisions{result="applied"}`` per action, summed over the replicas."""
    totals: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for bot in bots:
            async with session.get(f"{bot.base}/metrics") as response:
                text = await response.text()
            for family in text_string_to_metric_families(text):
                if family.name != "approval_bot_decisions":
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_total") and sample.labels["result"] == "applied":
                        action = sample.labels["action"]
                        totals[action] = totals.get(action, 0.0) + sample.value
    return totals


@dataclass(frozen=True)
class Choice:
    """One way to decide: the person, the stored action, the words each surface uses."""

    user: str
    action: str  # the stored action and the metrics label
    outcome: str  # the audit trail's word
    shown: str  # the decided message's "… by <@user>"


APPROVE = Choice(CAROL, "continue", "approved", "Approved by")
FEEDBACK = Choice(BOB, "feedback", "feedback", "Feedback from")
EDIT = Choice(BOB, "update", "edited", "Edited and approved by")
MODAL_VALUES: Mapping[str, dict[str, Any]] = {
    "feedback": {"feedback": "say it differently"},
    "update": {"arg:text": "edited words"},
}
BUTTON_OF = {"feedback": "review_feedback", "update": "review_edit"}


@pytest.mark.parametrize("rival", [FEEDBACK, EDIT], ids=["approve-vs-feedback", "approve-vs-edit"])
async def test_two_buttons_at_once_on_two_replicas_decide_once_and_agree(
    replicas: Replicas, rival: Choice
) -> None:
    sandbox, front = replicas.sandbox, replicas.front
    thread = await sandbox.post_message(ALICE, "#general", f'<@{BOT}> post "once only" to #random')
    review = await bounded_wait(lambda: review_of(sandbox, GENERAL, thread, "post_message"), 20)
    assert review and buttons_of(review)
    await sandbox.click_button(rival.user, GENERAL, review["ts"], BUTTON_OF[rival.action])
    assert await bounded_wait(lambda: sandbox.open_modal(rival.user), 15)

    before = list(front.hits)
    await asyncio.gather(
        sandbox.click_button(APPROVE.user, GENERAL, review["ts"], "review_approve"),
        sandbox.submit_modal(rival.user, MODAL_VALUES[rival.action]),
    )
    spread = [after - earlier for after, earlier in zip(front.hits, before, strict=True)]
    assert spread == [1, 1], spread  # one request on each replica

    [row] = await rows(
        replicas.db_url, "SELECT * FROM slack_reviews WHERE message_ts = %s", (review["ts"],)
    )

    async def settled() -> dict[str, Any] | None:
        [now] = await rows(
            replicas.db_url, "SELECT * FROM slack_reviews WHERE ref = %s", (row["ref"],)
        )
        return now if now["status"] == "decided" else None

    deadline = asyncio.get_running_loop().time() + 30
    decided = await settled()
    while decided is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        decided = await settled()
    assert decided, row
    winner = next(c for c in (APPROVE, rival) if c.action == decided["action"])
    loser = rival if winner is APPROVE else APPROVE
    assert decided["decided_by"] == winner.user

    def painted() -> str | None:
        message = next(m for m in sandbox.replies(GENERAL, thread) if m["ts"] == review["ts"])
        shown = text_of(message)
        decided = " by <@" in shown or "from <@" in shown
        return shown if decided and not buttons_of(message) else None

    shown = await bounded_wait(painted, 15)
    assert shown and f"{winner.shown} <@{winner.user}>" in shown, shown
    assert loser.shown not in shown and f"<@{loser.user}>" not in shown, shown
    repaints = [
        str(call.args)
        for call in sandbox.calls_of("chat.update")
        if call.args.get("ts") == review["ts"]
    ]
    assert repaints and not [r for r in repaints if loser.user in r], repaints  # not even briefly

    audit = await rows(
        replicas.db_url,
        "SELECT outcome, decided_by FROM audit_events "
        "WHERE thread_id = %s AND interrupt_id = %s AND outcome IN "
        "('approved', 'edited', 'feedback') ORDER BY id",
        (row["thread_id"], row["interrupt_id"]),
    )
    assert audit == [{"outcome": winner.outcome, "decided_by": winner.user}], audit

    applied = await applied_by_action(replicas.bots)
    assert applied.get(winner.action) == 1.0 and not applied.get(loser.action), applied

    def followed() -> bool:  # the winner's run is over: its reply, or the agent's next review
        later = [
            m for m in sandbox.replies(GENERAL, thread) if float(m["ts"]) > float(review["ts"])
        ]
        return any(m.get("user") == BOT for m in later)

    assert await bounded_wait(followed, 30)
    await sandbox.settle(3)
    posts = [m.get("text") for m in sandbox.messages(RANDOM)]
    expected = {"continue": ["once only"], "update": ["edited words"], "feedback": []}
    assert posts == expected[winner.action], posts
    print("two buttons:", {"winner": winner.action, "spread": spread})


def note_model() -> ScriptedModel:
    """One call of ``record_note``, then replies to spare: a second run shows as a second note,
    not as a model that ran out of words."""
    return ScriptedModel([tool_calls(("record_note", {"note": "once"})), *[AIMessage("noted")] * 3])


async def test_the_claim_alone_refuses_a_second_decision(database_url: str) -> None:
    """No thread lease: clicks whose answers could overlap in the agent. The claim lets one
    decision through; every other click is stale before it reaches the agent."""
    RUNS.clear()
    async with running_slack_env(database_url, model=note_model(), registry=registry_with()) as env:
        sandbox = env.sandbox
        with lease_bypassed(env.bot.service) as held:
            thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note it")
            [review] = await sandbox.wait_for(lambda: review_messages(sandbox, GENERAL, thread))
            clicks = [
                sandbox.click_button(user, GENERAL, review["ts"], button)
                for user, button in [(BOB, "review_approve"), (CAROL, "review_approve")] * 5
            ]
            await asyncio.gather(*clicks)
            await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "noted")
            await sandbox.wait_for(lambda: all(task.done() for task in env.bot.work.tasks), 30)
        assert held  # the agent ran with the bypass in place
        [row] = await rows(
            database_url, "SELECT * FROM slack_reviews WHERE message_ts = %s", (review["ts"],)
        )
        stale = [e for user in (BOB, CAROL) for e in sandbox.ephemerals(user)]
    assert RUNS == ["once"]
    assert row["status"] == "decided" and row["decided_by"] in (BOB, CAROL)
    assert stale and all(f"<@{row['decided_by']}>" in e["text"] for e in stale), stale


async def test_the_lease_alone_refuses_a_second_run(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    """No review store in front: two answers to one interrupt race into the agent service. The
    thread lease lets one run; the other finds the review decided, and by whom."""
    RUNS.clear()
    async with agent_factory(model=note_model(), registry=registry_with()) as service:
        started = await service.start_turn(thread_id, "note it", user="U1")
        assert isinstance(started, RunOutcome)
        [review] = started.pending
        answers = await asyncio.gather(
            service.answer(thread_id, review.interrupt_id, Approve("U2")),
            service.answer(thread_id, review.interrupt_id, Approve("U3")),
        )
    assert RUNS == ["once"]
    ran = [a for a in answers if isinstance(a, RunOutcome)]
    refused = [a for a in answers if isinstance(a, Refused)]
    assert len(ran) == 1 and len(refused) == 1, answers
    assert refused[0].reason == "not_pending" and refused[0].previous is not None
    assert refused[0].previous.decided_by == ("U2" if answers[0] is ran[0] else "U3")
