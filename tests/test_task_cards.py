"""Each reviewed call as a task (``bot.task_cards``, Slack's ``task_card`` block): pending
review, then approved (running), then done or failed, or declined; updated in place and linked
to its review card, which keeps its buttons. A workspace refusing the block gets what it had
before. Sandbox over signed HTTP, real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from bot.task_blocks import PHASES, task_blocks
from sandbox.blocks import validate_blocks
from sandbox.server import Sandbox
from tests.support.block_kit import assert_valid_blocks
from tests.support.bot_harness import (
    ALICE,
    BOT,
    SlackEnv,
    review_messages,
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
    async with running_slack_env(database_url, task_cards=True) as slack_env:
        yield slack_env


def test_every_phase_is_a_valid_task_card_within_slacks_limits() -> None:
    for phase in PHASES:
        body = task_blocks("r" * 40, "x" * 400, phase, "https://example.slack.com/archives/C1/p1")
        assert_valid_blocks(body)  # slack_sdk's TaskCardBlock validation
        assert not validate_blocks(body)  # and the sandbox's, as Slack checks it
        assert len(body[0]["title"]) <= 150
    ids = {task_blocks("r", "t", phase, None)[0]["block_id"] for phase in PHASES}
    assert len(ids) == len(PHASES)  # a new block_id per update, as Slack asks


def tasks(sandbox: Sandbox, thread: str) -> list[dict[str, Any]]:
    return [
        m
        for m in sandbox.replies(GENERAL, thread)
        if any(b.get("type") == "task_card" for b in m.get("blocks") or [])
    ]


def card_of(message: dict[str, Any]) -> dict[str, Any]:
    [card] = [b for b in message["blocks"] if b["type"] == "task_card"]
    return dict(card)


async def start(env: SlackEnv, ask: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    sandbox = env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {ask}")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, GENERAL, thread), WITHIN)
    [task] = await sandbox.wait_for(lambda: tasks(sandbox, thread), WITHIN)
    card = card_of(task)
    assert card["status"] == "pending" and card["title"].endswith("waiting for review")
    link = card["details"]["elements"][0]["elements"][1]
    assert link["url"].endswith(f"/p{review['ts'].replace('.', '')}")  # linked to its card
    assert review_messages(sandbox, GENERAL, thread)  # the card keeps its buttons
    return thread, review, task


async def final_status(sandbox: Sandbox, thread: str, status: str) -> dict[str, Any]:
    return await sandbox.wait_for(
        lambda: next(
            (card_of(m) for m in tasks(sandbox, thread) if card_of(m)["status"] == status), None
        ),
        WITHIN,
    )


async def test_an_approved_call_runs_and_its_task_is_done_in_place(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review, task = await start(env, "what's the weather in sf?")
    await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
    done = await final_status(sandbox, thread, "complete")
    assert done["title"] == "weather_search: done"
    assert [m["ts"] for m in tasks(sandbox, thread)] == [task["ts"]]  # updated in place
    shown = [
        c.args["blocks"][0]["status"]
        for c in sandbox.calls_of("chat.update")
        if c.args.get("ts") == task["ts"]
    ]
    # running, then done (a run finishing before the task's own post was stored may skip
    # straight to done: the phase kept in its row is what gets painted)
    assert shown[-1] == "complete" and set(shown) <= {"in_progress", "complete"}, shown


async def test_a_call_sent_back_with_feedback_is_declined(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review, _ = await start(env, "what's the weather in sf?")
    await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_feedback")
    await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    assert (await sandbox.submit_modal(ALICE, {"feedback": "not now"})).closed
    declined = await final_status(sandbox, thread, "complete")
    assert declined["title"] == "weather_search: declined, not run"


async def test_a_call_that_fails_shows_a_failed_task(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review, _ = await start(env, "set the topic of #nowhere-at-all to Launch")
    await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
    failed = await final_status(sandbox, thread, "error")
    assert failed["title"] == "set_channel_topic: failed"


def reviews_in(sandbox: Sandbox, thread: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: review_messages(sandbox, GENERAL, thread)


def said(sandbox: Sandbox, thread: str, words: str) -> Callable[[], bool]:
    return lambda: any(words in str(m.get("text")) for m in sandbox.replies(GENERAL, thread))


async def test_a_workspace_refusing_task_cards_gets_the_review_card_alone(
    database_url: str,
) -> None:
    async with running_slack_env(database_url, task_cards=True) as env:
        sandbox = env.sandbox
        sandbox.web_api.refused_block_types.add("task_card")
        for ask in ("what's the weather in sf?", "what's the weather in Oslo?"):
            thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {ask}")
            [review] = await sandbox.wait_for(reviews_in(sandbox, thread), WITHIN)
            await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
            await sandbox.wait_for(said(sandbox, thread, "Done."), WITHIN)
            assert not tasks(sandbox, thread)
        refused = [
            c
            for c in sandbox.calls_of("chat.postMessage")
            if any(b.get("type") == "task_card" for b in c.args.get("blocks") or [])
        ]
        assert len(refused) == 1 and refused[0].error == "invalid_blocks"  # asked once


async def test_an_edited_call_runs_as_edited_and_its_task_is_done_in_place(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review, task = await start(env, "what's the weather in sf?")
    await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_edit")
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE), WITHIN)
    assert modal["callback_id"] == "review_edit_submit"
    assert (await sandbox.submit_modal(ALICE, {"arg:city": "Oslo"})).closed
    done = await final_status(sandbox, thread, "complete")
    assert done["title"] == "weather_search: done"
    assert [m["ts"] for m in tasks(sandbox, thread)] == [task["ts"]]  # updated in place
    link = done["details"]["elements"][0]["elements"][1]
    assert link["url"].endswith(f"/p{review['ts'].replace('.', '')}")  # still its card's
    edited = next(m for m in sandbox.replies(GENERAL, thread) if m["ts"] == review["ts"])
    assert "Edited and approved by" in text_of(edited)


async def test_a_call_that_ran_before_the_model_failed_shows_done_not_waiting(
    database_url: str,
) -> None:
    """The tool ran, then the model failed: the decision is the agent's (settled, no buttons),
    so the task says how the call ended, never "waiting for review" again."""
    model = ScriptedModel([tool_calls(("record_note", {"note": "ship it"})), model_down])
    async with running_slack_env(
        database_url, model=model, registry=registry_with(), task_cards=True
    ) as env:
        sandbox = env.sandbox
        thread, review, task = await start(env, "note: ship it")
        await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies(GENERAL, thread) if "but then" in text_of(m)],
            WITHIN,
        )
        done = await final_status(sandbox, thread, "complete")
        assert done["title"] == "record_note: done"
        await sandbox.settle(5)
        assert card_of(next(m for m in tasks(sandbox, thread) if m["ts"] == task["ts"])) == done


async def test_a_decision_given_back_after_a_failure_shows_the_task_waiting_again(
    env: SlackEnv,
) -> None:
    sandbox = env.sandbox
    thread, review, task = await start(env, "what's the weather in sf?")
    failed = answer_fails_once(env.bot.service)
    await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
    await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE), WITHIN)
    await sandbox.wait_for(lambda: review_messages(sandbox, GENERAL, thread), WITHIN)  # buttons
    pending = await sandbox.wait_for(
        lambda: (
            [
                c.args["blocks"][0]["status"]
                for c in sandbox.calls_of("chat.update")
                if c.args.get("ts") == task["ts"]
            ][-1:]
            == ["pending"]
        ),
        WITHIN,
    )
    assert pending and failed
    await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")  # again: runs
    done = await final_status(sandbox, thread, "complete")
    assert done["title"] == "weather_search: done"
    assert [m["ts"] for m in tasks(sandbox, thread)] == [task["ts"]]


class HeldAfterTheTool(ScriptedModel):
    """Proposes the weather call; after it ran, answers only once released (a model that
    takes its time over the result)."""

    def __init__(self) -> None:
        super().__init__([tool_calls(("weather_search", {"city": "sf"})), AIMessage("Sunny.")])
        self.release = asyncio.Event()
        self.holding = asyncio.Event()  # set once the answer after the tool is being held

    async def ainvoke(self, input: Sequence[BaseMessage], config: Any = None) -> AIMessage:
        if self.seen:
            self.holding.set()
            await self.release.wait()
        return await super().ainvoke(input, config)


async def test_in_a_streamed_turn_the_task_is_done_as_soon_as_its_call_ran(
    database_url: str,
) -> None:
    """The reply is streamed, and the model is still working after the tool: the task says
    done already (not "approved, running" until the turn ends)."""
    model = HeldAfterTheTool()
    async with running_slack_env(
        database_url, model=model, stream_replies=True, task_cards=True
    ) as env:
        sandbox = env.sandbox
        try:
            thread, review, _ = await start(env, "what's the weather in sf?")
            await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
            done = await final_status(sandbox, thread, "complete")
            assert done["title"] == "weather_search: done"
            assert model.holding.is_set() and not model.release.is_set()  # the turn goes on
        finally:
            model.release.set()
        await sandbox.wait_for(said(sandbox, thread, "Sunny."), WITHIN)
