"""Policy end to end through Slack: quorum, four-eyes, redaction, expiry, reminders, and the
sweeper finishing what a stopped process started."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from bot.audit import AuditLog
from bot.sweeper import sweep_once
from graph.decisions import Approve
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

POLICY = """\
[defaults]
approvers = ["U0ALICE", "U0BOB", "U0CAROL"]

[tools.record_note]
quorum = 2
four_eyes = true
redact = ["note"]

[tools.weather_search]
ttl = "1s"
"""


@pytest.fixture
async def env(database_url: str, tmp_path: Path) -> AsyncIterator[SlackEnv]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    RUNS.clear()
    model = ScriptedModel(
        [tool_calls(("record_note", {"note": "the launch code"})), AIMessage(content="noted")]
    )
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=policy
    ) as slack_env:
        yield slack_env


async def review_in(sandbox: Sandbox, thread: str) -> dict[str, Any]:
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    return review


def current(sandbox: Sandbox, thread: str, ts: str) -> str:
    return text_of(next(m for m in sandbox.replies("C0GENERAL", thread) if m["ts"] == ts))


async def test_quorum_four_eyes_and_redaction(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note the launch code")
    review = await review_in(sandbox, thread)
    shown = current(sandbox, thread, review["ts"])
    assert "the launch code" not in shown and "[redacted]" in shown
    assert "0 of 2 approvals" in shown

    await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_approve")
    [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(CAROL))
    assert "four-eyes" in refusal["text"]
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    assert "arg:note" not in str(modal["blocks"])  # a redacted value is not shown, even here
    await sandbox.close_modal(ALICE)

    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(lambda: "1 of 2 approvals" in current(sandbox, thread, review["ts"]))
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(lambda: all(task.done() for task in env.bot.work.tasks), 30)
    [note] = sandbox.ephemerals(ALICE)  # "recorded: 1 of 2" said once, not stacked
    assert "1 of 2" in note["text"]
    assert RUNS == []  # the same person twice is still one approval

    await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: "Approved by <@U0ALICE> and <@U0BOB>" in current(sandbox, thread, review["ts"])
    )
    await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "noted")
    assert RUNS == ["the launch code"]
    everything = str([c.args for c in sandbox.workspace.calls])
    assert "the launch code" not in everything.replace("recorded: the launch code", "")

    trail = [
        row
        for row in await AuditLog(env.bot.service.pool).query(tool="record_note")
        if row["thread_id"].endswith(thread)
    ]
    assert [(r["outcome"], r["decided_by"]) for r in trail] == [
        ("requested", None),
        ("refused", CAROL),  # four-eyes
        ("approval_recorded", ALICE),
        ("approval_recorded", ALICE),
        ("approved", BOB),
    ]
    assert trail[0]["requested_by"] == CAROL
    assert trail[-1]["executed_args"] == {"note": "[redacted]"}
    assert "the launch code" not in str(trail)


async def test_edit_with_quorum_needs_fresh_approvals(database_url: str) -> None:
    policy = "[tools.post_message]\nquorum = 2\n"
    model = ScriptedModel(
        [
            tool_calls(("post_message", {"channel": "#random", "text": "hi"})),
            AIMessage(content="posted"),
        ]
    )
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=_policy(policy)
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> say hi in #random")
        review = await review_in(sandbox, thread)
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(lambda: "1 of 2" in current(sandbox, thread, review["ts"]))
        # Bob edits: Alice approved other words, so her approval no longer counts.
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
        assert (await sandbox.submit_modal(BOB, {"arg:text": "hi team"})).closed
        await sandbox.wait_for(
            lambda: "1 of 2 approvals (<@U0BOB>)" in current(sandbox, thread, review["ts"])
        )
        shown = current(sandbox, thread, review["ts"])
        assert "Edited by <@U0BOB>" in shown and "~hi~ → hi team" in shown
        assert not sandbox.calls_of("chat.postMessage") or all(
            c.args.get("channel") != "#random" for c in sandbox.calls_of("chat.postMessage")
        )
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        posted = await sandbox.wait_for_call(
            "chat.postMessage", lambda c: c.args.get("channel") == "#random"
        )
        assert posted.args["text"] == "hi team"
        await sandbox.wait_for(
            lambda: "approved by <@U0BOB> and <@U0ALICE>" in current(sandbox, thread, review["ts"])
        )


async def test_reviews_expire_closed_and_the_agent_is_told(database_url: str) -> None:
    model = ScriptedModel(
        [
            tool_calls(("weather_search", {"city": "Oslo"})),
            lambda seen: AIMessage(content=f"told: {seen[-1].content}"),
        ]
    )
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=_policy(POLICY)
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Oslo")
        review = await review_in(sandbox, thread)
        await asyncio.sleep(1.1)  # the policy's time to live for this tool is one second
        report = await sweep_once(env.bot.flow)
        assert report.expired == 1
        await sandbox.wait_for(lambda: "Expired" in current(sandbox, thread, review["ts"]))
        told = await sandbox.wait_for(
            lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "told:" in text_of(m)]
        )
        assert "was not run" in text_of(told[0])
        assert not review_messages(sandbox, "C0GENERAL", thread)  # no buttons left
        assert (await sweep_once(env.bot.flow)).expired == 0


async def test_approvers_are_reminded_before_expiry(database_url: str) -> None:
    policy = POLICY + "\n[tools.create_channel]\nttl = 3600\nremind_before = 3599.5\n"
    model = ScriptedModel([tool_calls(("create_channel", {"name": "launch"}))])
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=_policy(policy)
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> make a channel")
        await review_in(sandbox, thread)
        await asyncio.sleep(0.6)
        assert (await sweep_once(env.bot.flow)).reminded == 1
        [reminder] = await sandbox.wait_for(
            lambda: [
                m for m in sandbox.replies("C0GENERAL", thread) if ":alarm_clock:" in text_of(m)
            ]
        )
        assert "<@U0ALICE> <@U0BOB> <@U0CAROL>" in text_of(reminder)
        assert (await sweep_once(env.bot.flow)).reminded == 0


async def test_a_claimed_but_unapplied_decision_is_finished_by_the_sweeper(env: SlackEnv) -> None:
    sandbox = env.sandbox
    flow = env.bot.flow
    thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note it")
    review = await review_in(sandbox, thread)
    ref = review_ref(review)
    # A process claimed Alice's decision and died before applying it.
    assert await flow.store.claim(ref, Approve(ALICE)) is not None
    # ">= 1": with stuck_after=0 a sweep also takes over claims other tests left behind
    # in the shared database; what matters is what happens to this one.
    assert (await sweep_once(flow, stuck_after=0)).recovered >= 1
    await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "noted")
    assert RUNS == ["the launch code"]
    finished = await flow.store.get(ref)
    assert finished is not None and finished.status == "decided"
    await sweep_once(flow, stuck_after=0)
    assert RUNS == ["the launch code"], "a finished decision is never replayed"


def _policy(text: str) -> Path:
    path = Path(tempfile.mkdtemp()) / "policy.toml"
    path.write_text(text)
    return path


async def test_every_replica_sweeps_in_the_background(database_url: str) -> None:
    model = ScriptedModel(
        [tool_calls(("weather_search", {"city": "Oslo"})), AIMessage(content="understood")]
    )
    async with running_slack_env(
        database_url,
        model=model,
        registry=registry_with(),
        policy_file=_policy(POLICY),
        sweep_seconds=0.2,
    ) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Oslo")
        review = await review_in(sandbox, thread)
        await sandbox.wait_for(
            lambda: "Expired" in current(sandbox, thread, review["ts"]), within=10
        )
