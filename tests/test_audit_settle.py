"""Every executed call is in the audit trail, and every path that settles a review writes its
decision event exactly once.

The settle paths, each driven end to end here: a decision applied normally (approve, feedback,
expiry), the model failing after the tool ran (``_after_failure``), and the sweeper settling a
decision the agent already had (``recover_applied``: the same decider's, or another's). A call
that ran without review is ``auto_approved``, with the rule that let it run. ``requested`` is on
record before the review message exists, so no click can be recorded before it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from bot import audit_cli
from bot.audit import AuditEvent, AuditLog
from bot.migrations import migrate_bot
from bot.store import BotStore, ReviewRow
from bot.sweeper import sweep_once
from bot.threads import SlackThread
from graph.db import open_pool
from graph.decisions import Approve
from graph.tools.registry import build_registry
from sandbox.server import Sandbox
from tests.conftest import AgentFactory
from tests.support.anthropic_stub import AnthropicStub, running_anthropic_stub
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
from tests.support.graph_helpers import claude_model, outcome
from tests.support.scripted_model import ScriptedModel, tool_calls
from tests.test_consent_expiry import handled
from tests.test_graph_claude import tool_results

POLICY = '[tools.record_note]\nredact = ["note"]\n'
HOUR = 3600.0


class ModelDown(RuntimeError):
    pass


def model_down(seen: Any) -> AIMessage:
    raise ModelDown("the model went away after the tool ran")


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


async def trail(env: SlackEnv, thread: str) -> list[dict[str, Any]]:
    rows = await AuditLog(env.bot.service.pool).query(tool="record_note")
    return [r for r in rows if r["thread_id"].endswith(thread)]


async def outcomes(env: SlackEnv, thread: str) -> list[tuple[str, str | None]]:
    return [(r["outcome"], r["decided_by"]) for r in await trail(env, thread)]


async def open_review(sandbox: Sandbox) -> tuple[str, dict[str, Any], str]:
    thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note: ship it")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    return thread, review, review_ref(review)


def said(sandbox: Sandbox, thread: str, words: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.replies("C0GENERAL", thread) if words in text_of(m)]


async def settled(env: SlackEnv, ref: str, within: float = 10.0) -> ReviewRow:
    """The review once it is settled (bounded wait)."""
    deadline = time.monotonic() + within
    while (row := await env.bot.flow.store.get(ref)) is None or row.status != "decided":
        assert time.monotonic() < deadline, f"review {ref} was never settled"
        await asyncio.sleep(0.05)
    return row


# -- calls that ran without review -----------------------------------------------------------


async def test_an_auto_approved_call_is_recorded_once_with_its_rule(
    database_url: str, policy: Path
) -> None:
    RUNS.clear()
    registry = registry_with().with_policies({"record_note": "auto"}, "AGENT_AUTO_APPROVE")
    model = ScriptedModel([tool_calls(("record_note", {"note": "secret"})), AIMessage("noted")])
    async with running_slack_env(
        database_url, model=model, registry=registry, policy_file=policy
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note: secret")
        await sandbox.wait_for(lambda: said(sandbox, thread, "noted"))
        assert RUNS == ["secret"]
        [row] = await trail(env, thread)
        assert row["outcome"] == "auto_approved"
        assert row["detail"] == "AGENT_AUTO_APPROVE"
        assert row["requested_by"] == CAROL and row["decided_by"] is None
        assert row["executed_args"] == row["proposed_args"] == {"note": "[redacted]"}
        assert "secret" not in json.dumps(row, default=str)
        by_outcome = await AuditLog(env.bot.service.pool).query(outcome="auto_approved")
        assert row["id"] in [r["id"] for r in by_outcome]
        assert "auto_approved" in audit_cli.OUTCOMES  # `python -m bot audit --outcome ...`

        # Presenting the same results again (a recovery does) records nothing more.
        _, team, channel, ts = row["thread_id"].split(":")
        slack = SlackThread(None if team == "-" else team, channel, ts)
        again = await env.bot.service.recap(
            row["thread_id"], after_message=f"slack:{channel}:{thread}"
        )
        assert [r.auto_rule for r in again.tool_results] == ["AGENT_AUTO_APPROVE"]
        await env.bot.flow.present(slack, again, recovering=True, requester=CAROL)
        assert [r["outcome"] for r in await trail(env, thread)] == ["auto_approved"]


async def test_a_policy_file_auto_is_recorded_with_the_file_as_its_rule(
    database_url: str, tmp_path: Path
) -> None:
    """The rule in ``detail`` names where ``mode = "auto"`` was written, not another source."""
    RUNS.clear()
    path = tmp_path / "policy.toml"
    path.write_text('[tools.record_note]\nmode = "auto"\nredact = ["note"]\n')
    model = ScriptedModel([tool_calls(("record_note", {"note": "n1"})), AIMessage("noted")])
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=path
    ) as env:
        thread = await env.sandbox.post_message(CAROL, "#general", f"<@{BOT}> note: n1")
        await env.sandbox.wait_for(lambda: said(env.sandbox, thread, "noted"))
        [row] = await trail(env, thread)
        assert row["outcome"] == "auto_approved"
        assert row["detail"] == f'policy file {path} [tools.record_note] mode = "auto"'


# -- every settle path writes its decision event once --------------------------------------


@pytest.fixture
async def env(database_url: str, policy: Path) -> AsyncIterator[SlackEnv]:
    RUNS.clear()
    model = ScriptedModel(
        [tool_calls(("record_note", {"note": "ship it"})), AIMessage(content="noted")]
    )
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=policy
    ) as slack_env:
        yield slack_env


async def test_settle_path_apply_approve(env: SlackEnv) -> None:
    thread, review, ref = await open_review(env.sandbox)
    await env.sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await env.sandbox.wait_for(lambda: said(env.sandbox, thread, "noted"))
    await settled(env, ref)
    assert await outcomes(env, thread) == [("requested", None), ("approved", ALICE)]
    [decision] = (await trail(env, thread))[1:]
    assert decision["executed_args"] == {"note": "[redacted]"}


async def test_settle_path_apply_expiry(env: SlackEnv) -> None:
    thread, _, ref = await open_review(env.sandbox)
    async with env.bot.service.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET expires_at = now() - interval '1 second' WHERE ref = %s",
            (ref,),
        )
    await sweep_once(env.bot.flow)
    await settled(env, ref)
    assert await outcomes(env, thread) == [("requested", None), ("expired", None)]


async def test_settle_path_model_fails_after_the_tool_ran(database_url: str, policy: Path) -> None:
    RUNS.clear()
    model = ScriptedModel([tool_calls(("record_note", {"note": "ship it"})), model_down])
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=policy
    ) as env:
        thread, review, ref = await open_review(env.sandbox)
        await env.sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await env.sandbox.wait_for(lambda: said(env.sandbox, thread, "applied, but then"))
        await settled(env, ref)
        assert RUNS == ["ship it"]
        assert await outcomes(env, thread) == [("requested", None), ("approved", ALICE)]


@pytest.mark.parametrize("claimed_by", [ALICE, BOB], ids=["same-decider", "another-decider"])
async def test_settle_path_sweeper_settles_what_the_agent_already_applied(
    env: SlackEnv, claimed_by: str
) -> None:
    """A process applied Alice's decision to the agent and died before settling the row (which
    a claim by ``claimed_by`` still holds): the sweeper settles it with Alice's event."""
    flow = env.bot.flow
    thread, _, ref = await open_review(env.sandbox)
    await handled(env, thread)  # the sweep below must not be answering the mention again
    claimed = await flow.store.claim(ref, Approve(claimed_by))
    assert isinstance(claimed, ReviewRow)
    applied = await flow.service.answer(
        claimed.thread_id, claimed.interrupt_id, {"action": "continue", "by": ALICE}
    )
    outcome(applied)
    assert RUNS == ["ship it"]
    await sweep_once(flow, stuck_after=0)
    await settled(env, ref)
    assert RUNS == ["ship it"]
    assert await outcomes(env, thread) == [("requested", None), ("approved", ALICE)]
    await sweep_once(flow, stuck_after=0)
    assert len(await trail(env, thread)) == 2, "a settled review gets no second event"


async def test_settling_requires_an_event_and_writes_it_once(database_url: str) -> None:
    """The settle API cannot be called without the decision's event; a second settle of the
    same review (a process that only seemed dead) adds no second event."""
    audit = inspect.signature(BotStore.finish).parameters["audit"]
    assert audit.default is inspect.Parameter.empty
    async with open_pool(database_url, max_size=2) as pool:
        await migrate_bot(pool)
        store = BotStore(pool)
        tool = f"tool_{uuid.uuid4().hex[:8]}"
        request: Any = {
            "question": "ok?",
            "tool_call": {"name": tool, "args": {}, "id": "call-1"},
            "tool": {"name": tool, "description": "", "args_schema": {}},
            "requested_by": CAROL,
        }
        ref = await store.add_review(f"thread-{uuid.uuid4().hex}", "int", None, "C", "1", request)
        assert ref is not None and await store.claim(ref, Approve(ALICE))
        event = AuditEvent("approved", "t", "int", "call-1", tool, decided_by=ALICE)
        await store.finish(ref, event)
        await store.finish(ref, event)
        assert [r["outcome"] for r in await AuditLog(pool).query(tool=tool)] == ["approved"]


# -- 'requested' comes first ---------------------------------------------------------------


async def test_the_request_is_on_record_before_its_review_is_posted(env: SlackEnv) -> None:
    """A click can only follow the message; so the trail must have ``requested`` by then."""
    client = env.bot.flow.client
    post = client.chat_postMessage
    seen_at_post: list[list[str]] = []

    async def observing_post(**kwargs: Any) -> Any:
        if any(b.get("type") == "actions" for b in kwargs.get("blocks") or []):
            rows = await AuditLog(env.bot.service.pool).query(tool="record_note")
            seen_at_post.append(
                [r["outcome"] for r in rows if r["thread_id"].endswith(kwargs["thread_ts"])]
            )
        return await post(**kwargs)

    client.chat_postMessage = observing_post  # type: ignore[method-assign]
    thread, review, _ = await open_review(env.sandbox)
    assert seen_at_post == [["requested"]]
    await env.sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_approve")
    await env.sandbox.wait_for(lambda: said(env.sandbox, thread, "noted"))
    assert [o for o, _ in await outcomes(env, thread)] == ["requested", "approved"]


# -- what the graph stamps on a result, and what the model is sent --------------------------


@pytest.fixture
async def stub() -> AsyncIterator[AnthropicStub]:
    async with running_anthropic_stub() as running:
        yield running


async def test_results_carry_their_arguments_and_rule_and_the_model_sees_neither(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str
) -> None:
    registry = build_registry(auto_approve=["weather_search"])
    [call] = stub.reply_tool_calls([("weather_search", {"city": "Oslo"})])
    stub.reply_text("Cold in Oslo.")
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        ran = outcome(await service.start_turn(thread_id, "weather in Oslo?"))
        [result] = ran.tool_results
        assert (result.args, result.auto_rule) == ({"city": "Oslo"}, "AGENT_AUTO_APPROVE")
        [read_back] = (await service.recap(thread_id, call.id)).tool_results
        assert read_back == result
    second = stub.requests[1]
    block = tool_results(second)[call.id]
    assert set(block) <= {"type", "tool_use_id", "content", "is_error", "cache_control"}
    sent = json.dumps(second)
    assert "ran_with" not in sent and "auto_rule" not in sent
    assert "AGENT_AUTO_APPROVE" not in sent
