"""The status tells the truth (``bot.status``): the session (``agents.sessions.setStatus``) and
the words (``assistant.threads.setStatus``) say working while the agent runs, who may decide
while a review waits (two at once, an expiry, a decision given back), closed afterwards, also
after a failure; the ``:eyes:`` reaction only where neither API is available. Sandbox over
signed HTTP, real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from bot.status import CLOSED, PROCESSING, SUSPENDED, WORKING
from bot.sweeper import sweep_once
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
from tests.support.counting_tools import registry_with
from tests.support.faults import answer_fails_once, model_down
from tests.support.scripted_model import ScriptedModel, tool_calls

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
    # the session's lifecycle, alongside the words
    assert sessions(sandbox, thread) == [PROCESSING, SUSPENDED, PROCESSING, CLOSED]
    started = sandbox.calls_of("agents.sessions.setStatus")[0]
    assert started.args["initiator_user_id"] == ALICE  # who asked
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


def removed_from(ts: str) -> Callable[[Any], bool]:
    return lambda call: call.args.get("timestamp") == ts


@pytest.mark.parametrize("error", ["unknown_method", "not_allowed", "missing_scope"])
async def test_without_either_status_api_the_reaction_shows_progress(
    database_url: str, error: str
) -> None:
    async with running_slack_env(database_url) as env:
        sandbox = env.sandbox
        sandbox.web_api.assistant.unavailable = error
        sandbox.web_api.assistant.sessions_unavailable = error
        for ask in ("hello", "hello again"):
            ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {ask}")
            await sandbox.wait_for_call("reactions.remove", removed_from(ts))
        added = [c.args["timestamp"] for c in sandbox.calls_of("reactions.add")]
        assert len(added) == 2 and all(c.ok for c in sandbox.calls_of("reactions.add"))
        for method in ("assistant.threads.setStatus", "agents.sessions.setStatus"):
            [asked] = sandbox.calls_of(method)  # once, then remembered
            assert asked.error == error


@pytest.mark.parametrize("error", ["unknown_method", "not_allowed"])
async def test_either_status_api_alone_shows_progress_without_the_reaction(
    database_url: str, error: str
) -> None:
    for lacking in ("sessions", "words"):
        async with running_slack_env(database_url) as env:
            sandbox, assistant = env.sandbox, env.sandbox.web_api.assistant
            if lacking == "sessions":
                assistant.sessions_unavailable = error
            else:
                assistant.unavailable = error
            for ask in ("hello", "hello again"):
                ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {ask}")
                await sandbox.wait_for(turn_over(sandbox, ts), WITHIN)
            assert not sandbox.calls_of("reactions.add"), lacking
            refused = (
                "agents.sessions.setStatus"
                if lacking == "sessions"
                else ("assistant.threads.setStatus")
            )
            [asked] = sandbox.calls_of(refused)  # once, then remembered
            assert asked.error == error


def turn_over(sandbox: Sandbox, thread: str) -> Callable[[], bool]:
    """The turn in ``thread`` is over, by whichever status API answered."""
    if sandbox.web_api.assistant.sessions_unavailable is None:
        return lambda: sandbox.web_api.assistant.session_of(GENERAL, thread) == CLOSED
    return lambda: statuses(sandbox, thread)[-1:] == [""]


def sessions(sandbox: Sandbox, thread: str) -> list[str]:
    return sandbox.web_api.assistant.sessions.get((GENERAL, thread), [])


# -- two parallel reviews, an expiry, a failure ----------------------------------------------

PARALLEL_POLICY = """\
[tools.weather_search]
approvers = ["U0ALICE"]

[tools.record_note]
approvers = ["U0BOB"]
"""
BOTH = "is waiting for approval from alice or bob"


@asynccontextmanager
async def parallel_env(
    database_url: str, tmp_path: Path, last: AIMessage | Callable[[Any], AIMessage]
) -> AsyncIterator[SlackEnv]:
    """A turn proposing two calls at once, each decided by someone else (Alice the weather,
    Bob the note); ``last``: what the model says once both are decided."""
    policy = tmp_path / "policy.toml"
    policy.write_text(PARALLEL_POLICY)
    model = ScriptedModel(
        [tool_calls(("weather_search", {"city": "Oslo"}), ("record_note", {"note": "n"})), last]
    )
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), policy_file=policy
    ) as env:
        yield env


async def two_reviews(env: SlackEnv) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The thread, then the weather's review card and the note's."""
    sandbox = env.sandbox
    thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> weather and a note")
    reviews = await sandbox.wait_for(
        lambda: found if len(found := review_messages(sandbox, GENERAL, thread)) == 2 else None,
        WITHIN,
    )
    await until_status(sandbox, thread, BOTH)
    [weather] = [r for r in reviews if "weather_search" in text_of(r)]
    [note] = [r for r in reviews if "record_note" in text_of(r)]
    return thread, weather, note


async def until_status(sandbox: Sandbox, thread: str, *last: str) -> list[str]:
    """The thread's statuses once the latest are ``last`` (bounded wait)."""
    return await sandbox.wait_for(
        lambda: seen if (seen := statuses(sandbox, thread))[-len(last) :] == list(last) else None,
        WITHIN,
    )


async def expire_now(env: SlackEnv, review: dict[str, Any]) -> None:
    """The review's time runs out, and the sweeper finds it."""
    async with env.bot.flow.store.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET expires_at = now() - interval '1 second' WHERE ref = %s",
            (review_ref(review),),
        )
    assert (await sweep_once(env.bot.flow)).expired == 1


async def test_two_parallel_reviews_wait_for_each_decider_until_both_are_done(
    database_url: str, tmp_path: Path
) -> None:
    async with parallel_env(database_url, tmp_path, AIMessage("both done")) as env:
        sandbox = env.sandbox
        thread, weather, note = await two_reviews(env)
        assert statuses(sandbox, thread) == [WORKING, BOTH]

        await sandbox.click_button(ALICE, GENERAL, weather["ts"], "review_approve")
        # working while the weather is applied, then waiting for Bob alone: the note waits
        seen = await until_status(sandbox, thread, WORKING, "is waiting for approval from bob")
        assert seen == [WORKING, BOTH, WORKING, "is waiting for approval from bob"]
        assert sandbox.workspace.status_of(GENERAL, thread) == "is waiting for approval from bob"

        await sandbox.click_button(BOB, GENERAL, note["ts"], "review_approve")
        seen = await until_status(sandbox, thread, WORKING, "")
        assert seen == [WORKING, BOTH, WORKING, "is waiting for approval from bob", WORKING, ""]
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies(GENERAL, thread) if "both done" in text_of(m)],
            WITHIN,
        )
        await sandbox.wait_for(lambda: sessions(sandbox, thread)[-1:] == [CLOSED], WITHIN)
        assert sessions(sandbox, thread) == [
            PROCESSING,
            SUSPENDED,  # both wait
            PROCESSING,  # the weather is applied; the note still waits
            SUSPENDED,  # the note waits
            PROCESSING,
            CLOSED,  # only once both are done
        ]
        assert sandbox.workspace.status_of(GENERAL, thread) == ""


async def test_an_expiry_moves_the_status_on_as_a_decision_does(
    database_url: str, tmp_path: Path
) -> None:
    async with parallel_env(database_url, tmp_path, AIMessage("one expired")) as env:
        sandbox = env.sandbox
        thread, weather, note = await two_reviews(env)

        await expire_now(env, weather)  # the note still waits for Bob
        seen = await until_status(sandbox, thread, WORKING, "is waiting for approval from bob")
        assert seen == [WORKING, BOTH, WORKING, "is waiting for approval from bob"]

        await expire_now(env, note)  # nothing waits any more: closed
        seen = await until_status(sandbox, thread, WORKING, "")
        assert seen[2:] == [WORKING, "is waiting for approval from bob", WORKING, ""]
        await sandbox.wait_for(lambda: sessions(sandbox, thread)[-1:] == [CLOSED], WITHIN)
        assert sessions(sandbox, thread) == [PROCESSING, SUSPENDED] * 2 + [PROCESSING, CLOSED]
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies(GENERAL, thread) if "one expired" in text_of(m)],
            WITHIN,
        )
        assert sandbox.workspace.status_of(GENERAL, thread) == ""


async def test_the_model_failing_after_both_calls_ran_closes_the_status(
    database_url: str, tmp_path: Path
) -> None:
    async with parallel_env(database_url, tmp_path, model_down) as env:
        sandbox = env.sandbox
        thread, weather, note = await two_reviews(env)
        await sandbox.click_button(ALICE, GENERAL, weather["ts"], "review_approve")
        await until_status(sandbox, thread, WORKING, "is waiting for approval from bob")
        await sandbox.click_button(BOB, GENERAL, note["ts"], "review_approve")
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies(GENERAL, thread) if "but then" in text_of(m)],
            WITHIN,
        )
        seen = await until_status(sandbox, thread, WORKING, "")
        assert seen == [WORKING, BOTH, WORKING, "is waiting for approval from bob", WORKING, ""]
        await sandbox.wait_for(lambda: sessions(sandbox, thread)[-1:] == [CLOSED], WITHIN)


async def test_a_decision_that_could_not_be_applied_leaves_the_review_waiting_in_the_status(
    database_url: str, tmp_path: Path
) -> None:
    """The agent fails before the call ran: the claim is released and the card's buttons come
    back, so the status says again who may decide it (and the other review), not closed."""
    async with parallel_env(database_url, tmp_path, AIMessage("done")) as env:
        sandbox = env.sandbox
        thread, weather, _ = await two_reviews(env)
        failed = answer_fails_once(env.bot.service)
        await sandbox.click_button(ALICE, GENERAL, weather["ts"], "review_approve")
        await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE), WITHIN)
        await sandbox.wait_for(lambda: len(review_messages(sandbox, GENERAL, thread)) == 2)
        seen = await until_status(sandbox, thread, WORKING, BOTH)
        assert seen == [WORKING, BOTH, WORKING, BOTH]
        await sandbox.wait_for(lambda: len(sessions(sandbox, thread)) == 4, WITHIN)
        assert sessions(sandbox, thread) == [PROCESSING, SUSPENDED, PROCESSING, SUSPENDED]
        assert failed
