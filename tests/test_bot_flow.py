"""The product as people meet it: Slack sandbox <-> bot over signed HTTP, real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from langchain_core.messages import AIMessage

from sandbox.server import Sandbox
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls


async def test_mention_review_approve_result(env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", "<@U0BOT> what's the weather in sf?")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", ts))
    assert "weather_search" in text_of(review)
    response = await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    assert response.status == 200
    await sandbox.wait_for(
        lambda: (
            "Approved by"
            in text_of(next(m for m in sandbox.replies("C0GENERAL", ts) if m["ts"] == review["ts"]))
        )
    )
    done = await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", ts) if "Done." in text_of(m)]
    )
    assert done
    assert not review_messages(sandbox, "C0GENERAL", ts)


async def start_review(env: SlackEnv, text: str, user: str = ALICE) -> tuple[str, dict[str, Any]]:
    ts = await env.sandbox.post_message(user, "#general", f"<@{BOT}> {text}")
    [review] = await env.sandbox.wait_for(lambda: review_messages(env.sandbox, "C0GENERAL", ts))
    return ts, review


def message(sandbox: Sandbox, thread_ts: str, ts: str) -> dict[str, Any]:
    return next(m for m in sandbox.replies("C0GENERAL", thread_ts) if m["ts"] == ts)


async def test_edit_shows_inline_errors_then_applies_the_edit(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review = await start_review(env, "invite <@U0BOB> to #general")
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    assert modal["callback_id"] == "review_edit_submit"
    inputs = [b["block_id"] for b in modal["blocks"] if b["type"] == "input"]
    assert inputs == ["arg:channel", "arg:users"]  # the tool's order, as stored

    # users is Slack's people picker (its schema says slack-users; see test_readable_flow)
    broken = await sandbox.submit_modal(ALICE, {"arg:users": []})
    assert broken.errors["arg:users"] and not broken.closed
    invalid = await sandbox.submit_modal(ALICE, {"arg:users": ["bob"]})
    assert "not Slack user ids" in invalid.errors.get("arg:users", str(invalid)), invalid
    assert not sandbox.calls_of("conversations.invite")

    done = await sandbox.submit_modal(ALICE, {"arg:users": ["U0BOB", "U0CAROL"]})
    assert done.closed
    invite = await sandbox.wait_for_call("conversations.invite")
    assert invite.args["users"] == "U0BOB,U0CAROL"
    updated = await sandbox.wait_for(
        lambda: "Edited and approved by" in text_of(message(sandbox, thread, review["ts"]))
    )
    shown = text_of(message(sandbox, thread, review["ts"]))
    assert shown.index("*channel*") < shown.index("*users*")
    # the change names the people, with their ids, as the argument list does
    assert "~@bob (`U0BOB`)~ → @bob (`U0BOB`), @carol (`U0CAROL`)" in shown, updated


async def test_feedback_sends_words_back_and_a_new_review_arrives(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review = await start_review(env, "what's the weather in sf?")
    await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_feedback")
    await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
    empty = await sandbox.submit_modal(BOB, {"feedback": "   "})
    assert empty.errors and not empty.closed
    sent = await sandbox.submit_modal(BOB, {"feedback": 'use "San Francisco, USA"'})
    assert sent.closed
    await sandbox.wait_for(
        lambda: "Feedback from <@U0BOB>" in text_of(message(sandbox, thread, review["ts"]))
    )
    [second] = await sandbox.wait_for(
        lambda: [
            m for m in review_messages(sandbox, "C0GENERAL", thread) if m["ts"] != review["ts"]
        ]
    )
    assert "San Francisco, USA" in text_of(second)


async def test_stale_click_is_told_who_decided_and_when(env: SlackEnv) -> None:
    sandbox = env.sandbox
    _, review = await start_review(env, "what's the weather in Oslo?")
    payload_clicks = [
        sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve"),
        sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve"),
    ]
    await asyncio.gather(*payload_clicks)
    note = await sandbox.wait_for(lambda: sandbox.ephemerals(BOB) or sandbox.ephemerals(ALICE))
    assert "already approved by <@U0" in note[0]["text"]
    assert "<!date^" in note[0]["text"]


async def test_twenty_simultaneous_approvals_run_the_tool_once(database_url: str) -> None:
    RUNS.clear()
    model = ScriptedModel(
        [
            tool_calls(("record_note", {"note": "once"})),
            AIMessage(content="noted"),
        ]
    )
    async with running_slack_env(database_url, model=model, registry=registry_with()) as env:
        sandbox = env.sandbox
        _, review = await start_review(env, "note it")
        clicks = [
            sandbox.click_button(user, "C0GENERAL", review["ts"], "review_approve")
            for user in [ALICE, BOB] * 10
        ]
        responses = await asyncio.gather(*clicks)
        assert all(r.status == 200 for r in responses)
        await sandbox.wait_for_call("chat.postMessage", lambda c: c.args.get("text") == "noted")
        await sandbox.wait_for(lambda: all(task.done() for task in env.bot.work.tasks), 30)
        for user in (ALICE, BOB):  # every late click is told, each distinct note once
            notes = [note["text"] for note in sandbox.ephemerals(user)]
            assert notes and len(notes) == len(set(notes)), notes
    assert RUNS == ["once"]


async def test_only_configured_approvers_may_decide(database_url: str) -> None:
    approvers = {"*": frozenset({ALICE, "S0APPROVERS"})}
    async with running_slack_env(database_url, approvers=approvers) as env:
        sandbox = env.sandbox
        thread, review = await start_review(env, "what's the weather in Rome?", user=CAROL)
        await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(CAROL))
        assert "Only" in refusal["text"] and "may decide" in refusal["text"]
        await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: all(task.done() for task in env.bot.work.tasks), 30)
        assert len(sandbox.ephemerals(CAROL)) == 1  # the same refusal is not said twice
        assert sandbox.open_modal(CAROL) is None
        assert review_messages(sandbox, "C0GENERAL", thread)  # still waiting
        # Bob is allowed through the user group, not by name.
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(
            lambda: "Approved by <@U0BOB>" in text_of(message(sandbox, thread, review["ts"]))
        )


async def test_tampered_button_value_is_refused_without_resuming(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review = await start_review(env, "what's the weather in Lima?")
    for block in review["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == "review_approve":
                element["value"] = "forged-reference"
    sandbox.workspace.find_message("C0GENERAL", review["ts"]).blocks = review["blocks"]
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    [note] = await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE))
    assert "don't recognise" in note["text"]
    assert review_messages(sandbox, "C0GENERAL", thread)
    assert not sandbox.calls_of("chat.update")


async def test_forged_or_old_requests_get_401(env: SlackEnv) -> None:
    body = b'{"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}'
    assert (await env.sandbox.send_raw(body, secret="wrong")).status == 401
    old = int(time.time()) - 6 * 60
    assert (await env.sandbox.send_raw(body, timestamp=old)).status == 401
    assert (await env.sandbox.send_raw(body, signature="v0=deadbeef")).status == 401


async def test_event_retries_are_handled_once(env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> what's the weather in Kyiv?")
    await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", ts))
    [delivery] = [
        d.body
        for d in sandbox.workspace.deliveries
        if d.body.get("event", {}).get("type") == "app_mention" and d.body["event"].get("ts") == ts
    ]
    replay = json.dumps(delivery).encode()
    response = await sandbox.send_raw(
        replay, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert response.status == 200
    await asyncio.sleep(0.3)
    assert len(review_messages(sandbox, "C0GENERAL", ts)) == 1


async def test_replies_in_the_thread_continue_without_a_mention(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review = await start_review(env, "what's the weather in Bern?")
    await sandbox.post_message(ALICE, "#general", "and what about the weather in Paris?", thread)
    note = await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "pending review" in text_of(m)]
    )
    assert note
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Done." in text_of(m)]
    )
    await sandbox.post_message(ALICE, "#general", "what's the weather in Paris?", thread)
    await sandbox.wait_for(
        lambda: [m for m in review_messages(sandbox, "C0GENERAL", thread) if "Paris" in text_of(m)]
    )


async def test_direct_messages_work_the_same_way(env: SlackEnv) -> None:
    sandbox = env.sandbox
    dm = sandbox.open_dm(ALICE)
    ts = await sandbox.post_message(ALICE, BOT, "what's the weather in Cairo?")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, dm, ts))
    await sandbox.click_button(ALICE, dm, review["ts"], "review_approve")
    await sandbox.wait_for(lambda: [m for m in sandbox.replies(dm, ts) if "Done." in text_of(m)])
