"""Each reviewed call as a task (``bot.task_cards``, Slack's ``task_card`` block): pending
review, then approved (running), then done or failed, or declined; updated in place and linked
to its review card, which keeps its buttons. A workspace refusing the block gets what it had
before. Sandbox over signed HTTP, real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.task_blocks import PHASES, task_blocks
from sandbox.blocks import validate_blocks
from sandbox.server import Sandbox
from tests.support.block_kit import assert_valid_blocks
from tests.support.bot_harness import ALICE, BOT, SlackEnv, review_messages, running_slack_env

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
    return card


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


async def test_a_workspace_refusing_task_cards_gets_the_review_card_alone(
    database_url: str,
) -> None:
    async with running_slack_env(database_url, task_cards=True) as env:
        sandbox = env.sandbox
        sandbox.web_api.refused_block_types.add("task_card")
        for ask in ("what's the weather in sf?", "what's the weather in Oslo?"):
            thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {ask}")
            [review] = await sandbox.wait_for(
                lambda t=thread: review_messages(sandbox, GENERAL, t), WITHIN
            )
            await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
            await sandbox.wait_for(
                lambda t=thread: any(
                    "Done." in str(m.get("text")) for m in sandbox.replies(GENERAL, t)
                ),
                WITHIN,
            )
            assert not tasks(sandbox, thread)
        refused = [
            c
            for c in sandbox.calls_of("chat.postMessage")
            if any(b.get("type") == "task_card" for b in c.args.get("blocks") or [])
        ]
        assert len(refused) == 1 and refused[0].error == "invalid_blocks"  # asked once
