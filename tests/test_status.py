"""The thread's status line tells the truth (``bot.status``): working while the agent runs,
who may decide while a review waits, cleared afterwards, also after a failure; the ``:eyes:``
reaction only where the status API is not available. Sandbox over signed HTTP, real
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.status import WORKING
from sandbox.server import Sandbox
from tests.support.bot_harness import ALICE, BOT, SlackEnv, review_messages, running_slack_env

WITHIN = 60.0
GENERAL = "C0GENERAL"


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    async with running_slack_env(
        database_url, approvers={"set_channel_topic": frozenset({ALICE, "U0BOB"})}
    ) as slack_env:
        yield slack_env


def statuses(sandbox: Sandbox, thread: str) -> list[str]:
    return [
        str(c.args["status"])
        for c in sandbox.calls_of("assistant.threads.setStatus")
        if c.args.get("thread_ts") == thread and c.ok
    ]


async def review_and_approve(env: SlackEnv, ask: str) -> str:
    sandbox = env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {ask}")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, GENERAL, thread), WITHIN)
    waiting = await sandbox.wait_for(lambda: sandbox.workspace.status_of(GENERAL, thread), WITHIN)
    assert statuses(sandbox, thread)[0] == WORKING
    assert waiting == statuses(sandbox, thread)[-1]
    await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
    await sandbox.wait_for(lambda: statuses(sandbox, thread)[-1:] == [""], WITHIN)
    return thread


async def test_a_turn_with_one_review_working_waiting_for_whom_then_cleared(
    env: SlackEnv,
) -> None:
    sandbox = env.sandbox
    thread = await review_and_approve(env, "what's the weather in sf?")
    assert statuses(sandbox, thread) == [
        WORKING,
        "is waiting for approval from anyone who can see the review",
        WORKING,
        "",
    ]
    working = sandbox.calls_of("assistant.threads.setStatus")[0]
    assert 0 < len(working.args["loading_messages"]) <= 10
    assert sandbox.workspace.status_of(GENERAL, thread) == ""
    assert not sandbox.calls_of("reactions.add")  # the status says it: no reaction


async def test_the_status_names_who_may_decide_and_clears_after_a_failure(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread = await review_and_approve(env, "set the topic of #nowhere-at-all to Launch")
    assert statuses(sandbox, thread) == [
        WORKING,
        "is waiting for approval from alice or bob",  # named as the cards name people
        WORKING,
        "",
    ]
    failed = [m for m in sandbox.replies(GENERAL, thread) if "did not work" in str(m.get("text"))]
    assert failed  # the tool failed, and the status was cleared all the same


@pytest.mark.parametrize("error", ["unknown_method", "missing_scope"])
async def test_without_the_status_api_the_reaction_shows_progress(
    database_url: str, error: str
) -> None:
    async with running_slack_env(database_url) as env:
        sandbox = env.sandbox
        sandbox.web_api.assistant.unavailable = error
        for ask in ("hello", "hello again"):
            ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {ask}")
            await sandbox.wait_for_call(
                "reactions.remove", lambda c, ts=ts: c.args.get("timestamp") == ts
            )
        added = [c.args["timestamp"] for c in sandbox.calls_of("reactions.add")]
        assert len(added) == 2 and all(c.ok for c in sandbox.calls_of("reactions.add"))
        [asked] = sandbox.calls_of("assistant.threads.setStatus")  # once, then remembered
        assert asked.error == error
