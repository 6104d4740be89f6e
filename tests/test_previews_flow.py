"""Previews and receipts end to end: the sandbox <-> the bot over signed HTTP, real PostgreSQL,
the offline planner proposing the built-in Slack tools (and a scripted model for test tools).

Each built-in tool's preview is on its card before anyone decides, and its receipt on the
decided card after it ran; a slow and a failing preview never hold the card back; an edit
repaints the card with the new arguments' preview; a failed call is said in plain words.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from graph import AgentContext, Preview
from graph.tools.registry import ToolEntry, ToolRegistry, builtin_entries
from sandbox.server import Sandbox
from tests.support.block_kit import assert_valid_blocks
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
from tests.support.scripted_model import ScriptedModel, tool_calls

WAIT = 20.0  # a review, a preview and a repaint on a busy machine
TECHNICAL = ("ToolInvocationError", "SlackToolError", "Error: the tool failed", "Traceback")


async def start(env: SlackEnv, text: str, user: str = ALICE) -> tuple[str, dict[str, Any]]:
    ts = await env.sandbox.post_message(user, "#general", f"<@{BOT}> {text}")
    [review] = await env.sandbox.wait_for(
        lambda: review_messages(env.sandbox, "C0GENERAL", ts), WAIT
    )
    return ts, review


def card(sandbox: Sandbox, thread: str, ts: str) -> dict[str, Any]:
    return next(m for m in sandbox.replies("C0GENERAL", thread) if m["ts"] == ts)


async def card_with(sandbox: Sandbox, thread: str, ts: str, words: str) -> dict[str, Any]:
    """The card once it shows ``words``; every paint of it is valid Block Kit."""
    found = await sandbox.wait_for(
        lambda: card(sandbox, thread, ts) if words in text_of(card(sandbox, thread, ts)) else None,
        WAIT,
    )
    assert_valid_blocks(found["blocks"])
    return found


def thread_text(sandbox: Sandbox, thread: str) -> str:
    """Everything the bot said in the thread."""
    return "\n".join(
        text_of(m) for m in sandbox.replies("C0GENERAL", thread) if m.get("user") == BOT
    )


async def approve(sandbox: Sandbox, review: dict[str, Any], user: str = BOB) -> None:
    response = await sandbox.click_button(user, "C0GENERAL", review["ts"], "review_approve")
    assert response.status == 200


async def test_post_message_shows_the_message_then_links_to_it(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review = await start(env, 'post "hello *team*, see <#C0RANDOM>" to #general')
    shown = await card_with(sandbox, thread, review["ts"], "Preview:")
    assert "Will post in <#C0GENERAL> as the bot:" in text_of(shown)
    sections = [b["text"]["text"] for b in shown["blocks"] if b["type"] == "section"]
    assert "hello *team*, see <#C0RANDOM>" in sections  # rendered as the message will be
    assert review_messages(sandbox, "C0GENERAL", thread)  # the buttons are still there
    assert not [c for c in sandbox.calls_of("chat.postMessage") if not c.args.get("thread_ts")]

    await approve(sandbox, review)
    decided = await card_with(sandbox, thread, review["ts"], "What it did:")
    [posted] = [m for m in sandbox.messages("C0GENERAL") if m.get("text", "").startswith("hello")]
    link = re.search(r"<(https?://[^|>]+)\|the message>", text_of(decided))
    assert link, text_of(decided)
    assert link.group(1).endswith(f"/archives/C0GENERAL/p{posted['ts'].replace('.', '')}")
    assert "Posted in <#C0GENERAL>" in text_of(decided)


async def test_set_topic_shows_old_and_new_then_the_new_topic(env: SlackEnv) -> None:
    sandbox = env.sandbox
    sandbox.workspace.channel("C0GENERAL").topic = "Ship & celebrate"
    thread, review = await start(env, "set the topic of #general to Launch on Friday")
    shown = await card_with(sandbox, thread, review["ts"], "Preview:")
    assert "*Now:* Ship &amp; celebrate\n*After:* Launch on Friday" in text_of(shown)
    await approve(sandbox, review)
    decided = await card_with(sandbox, thread, review["ts"], "What it did:")
    assert "The topic of <#C0GENERAL> is now: Launch on Friday" in text_of(decided)
    assert sandbox.workspace.channel("C0GENERAL").topic == "Launch on Friday"


async def test_invite_says_who_is_already_in_then_who_was_invited(env: SlackEnv) -> None:
    sandbox = env.sandbox
    side = sandbox.workspace.create_channel("side", BOT)
    sandbox.workspace.invite(side.id, [BOB])
    thread, review = await start(env, f"invite <@{BOB}> <@{CAROL}> to #side")
    shown = await card_with(sandbox, thread, review["ts"], "Preview:")
    # named, not mentioned: nobody is pinged by a card before anyone approved
    assert f"Will invite carol (`{CAROL}`) to <#{side.id}>." in text_of(shown)
    assert f"bob (`{BOB}`) is already in <#{side.id}>." in text_of(shown)
    assert f"<@{CAROL}>" not in text_of(shown).split("Preview:", 1)[1]
    assert [c.method for c in sandbox.calls_of("conversations.members")]
    assert not sandbox.calls_of("conversations.invite")
    await approve(sandbox, review, ALICE)
    decided = await card_with(sandbox, thread, review["ts"], "What it did:")
    assert f"Invited <@{BOB}>, <@{CAROL}> to <#{side.id}>" in text_of(decided)


async def test_create_channel_says_whether_the_name_is_free(env: SlackEnv) -> None:
    sandbox = env.sandbox
    taken_thread, taken = await start(env, "create channel #random")
    shown = await card_with(sandbox, taken_thread, taken["ts"], "Preview:")
    assert "#random is taken: Slack would refuse." in text_of(shown)

    thread, review = await start(env, "create channel #launch-plan", user=CAROL)
    shown = await card_with(sandbox, thread, review["ts"], "Preview:")
    assert "#launch-plan is free: a public channel will be created" in text_of(shown)
    await approve(sandbox, review)
    decided = await card_with(sandbox, thread, review["ts"], "What it did:")
    [made] = [c for c in sandbox.workspace.channels.values() if c.name == "launch-plan"]
    assert f"Created <#{made.id}>" in text_of(decided)


async def failure_said_plainly(sandbox: Sandbox, thread: str) -> None:
    """The thread says the call did not work, never "Done.", and in no technical words."""
    await sandbox.wait_for(lambda: "That did not work." in thread_text(sandbox, thread), WAIT)
    everything = thread_text(sandbox, thread)
    assert "Done." not in everything
    assert not [word for word in TECHNICAL if word in everything], everything


async def test_an_invalid_name_is_said_before_and_its_failure_in_plain_words(
    env: SlackEnv,
) -> None:
    sandbox = env.sandbox
    thread, review = await start(env, "create channel #Launch_Plan")
    shown = await card_with(sandbox, thread, review["ts"], "Preview:")
    assert "The tool would refuse these arguments" in text_of(shown)
    await approve(sandbox, review)
    decided = await card_with(sandbox, thread, review["ts"], "Did not work.")
    assert "the tool refused these arguments" in text_of(decided)
    reply = await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "did not work" in text_of(m)]
    )
    assert reply
    await failure_said_plainly(sandbox, thread)


async def test_a_failed_call_says_so_plainly_and_the_reply_is_not_done(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, review = await start(env, "set the topic of #nowhere to Hello")
    shown = await card_with(sandbox, thread, review["ts"], "Preview:")
    assert "There is no channel #nowhere that I can see" in text_of(shown)
    await approve(sandbox, review)
    decided = await card_with(sandbox, thread, review["ts"], "Did not work.")
    assert "there is no channel named #nowhere that I can see" in text_of(decided)
    await failure_said_plainly(sandbox, thread)


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


async def test_an_edit_repaints_the_card_with_the_new_preview(
    database_url: str, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, "[tools.set_channel_topic]\nquorum = 2\n")
    async with running_slack_env(database_url, policy_file=policy) as env:
        sandbox = env.sandbox
        thread, review = await start(env, "set the topic of #general to Launch on Friday")
        await card_with(sandbox, thread, review["ts"], "*After:* Launch on Friday")
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_edit")
        await sandbox.wait_for(lambda: sandbox.open_modal(BOB))
        assert (await sandbox.submit_modal(BOB, {"arg:topic": "Launch on Monday"})).closed
        edited = await card_with(sandbox, thread, review["ts"], "*After:* Launch on Monday")
        assert "Edited by <@U0BOB>" in text_of(edited)
        assert "*After:* Launch on Friday" not in text_of(edited)
        assert review_messages(sandbox, "C0GENERAL", thread)  # still waiting for its quorum


async def test_redacted_arguments_never_show_in_a_preview_or_receipt(
    database_url: str, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, '[tools.set_channel_topic]\nredact = ["topic"]\n')
    async with running_slack_env(database_url, policy_file=policy) as env:
        sandbox = env.sandbox
        thread, review = await start(env, "set the topic of #general to hunter2-secret")
        shown = await card_with(sandbox, thread, review["ts"], "Preview:")
        assert "*After:* [redacted]" in text_of(shown)
        await approve(sandbox, review)
        decided = await card_with(sandbox, thread, review["ts"], "What it did:")
        assert "is now: [redacted]" in text_of(decided)
        await sandbox.wait_for(lambda: "Done." in thread_text(sandbox, thread), WAIT)
        assert "hunter2" not in thread_text(sandbox, thread)


# -- a slow and a failing preview ------------------------------------------------------------


@tool
def slow_note(note: str) -> str:
    """Record a note (its preview never finishes)."""
    return f"noted: {note}"


@tool
def broken_note(note: str) -> str:
    """Record a note (its preview fails)."""
    return f"noted: {note}"


class SlowPreview:
    """A preview held on an event the test controls: it says when it started."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, args: dict[str, Any], context: AgentContext) -> Preview:
        self.started.set()
        await self.release.wait()
        return Preview(summary="too late to matter")


async def broken(args: dict[str, Any], context: AgentContext) -> Preview:
    raise RuntimeError("the preview's own bug, not for the thread")


async def test_a_slow_and_a_failing_preview_do_not_delay_the_card(database_url: str) -> None:
    slow = SlowPreview()
    registry = ToolRegistry(
        [
            *builtin_entries(),
            ToolEntry(slow_note, preview=slow),
            ToolEntry(broken_note, preview=broken),
        ]
    )
    model = ScriptedModel(
        [
            tool_calls(("slow_note", {"note": "a"}), ("broken_note", {"note": "b"})),
            AIMessage(content="noted both"),
        ]
    )
    async with running_slack_env(database_url, model=model, registry=registry) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note a and b")
        try:
            await asyncio.wait_for(slow.started.wait(), WAIT)
            # The slow preview is running and has not answered: its card is up already.
            cards = review_messages(sandbox, "C0GENERAL", thread)
            slow_card = next(m for m in cards if "slow_note" in text_of(m))
            assert "Working out what this will do" in text_of(slow_card)
            assert not slow.release.is_set()

            def both() -> list[str] | None:
                found = review_messages(sandbox, "C0GENERAL", thread)
                names = ("slow_note", "broken_note")
                ts = [next((m["ts"] for m in found if n in text_of(m)), None) for n in names]
                return [t for t in ts if t] if all(ts) else None

            for ts in await sandbox.wait_for(both, WAIT):
                shown = await card_with(sandbox, thread, ts, "No preview")
                assert "the preview's own bug" not in text_of(shown)
            assert len(review_messages(sandbox, "C0GENERAL", thread)) == 2  # still waiting
        finally:
            slow.release.set()


async def test_a_preview_that_comes_in_after_the_decision_leaves_the_decided_card(
    database_url: str,
) -> None:
    slow = SlowPreview()
    registry = ToolRegistry([*builtin_entries(), ToolEntry(slow_note, preview=slow)])
    model = ScriptedModel([tool_calls(("slow_note", {"note": "a"})), AIMessage(content="ok")])
    async with running_slack_env(database_url, model=model, registry=registry) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note a")
        try:
            await asyncio.wait_for(slow.started.wait(), WAIT)
            [review] = review_messages(sandbox, "C0GENERAL", thread)
            await approve(sandbox, review)
            await card_with(sandbox, thread, review["ts"], "Approved by")
        finally:
            slow.release.set()  # the preview answers now, after the decision
        await env.bot.flow.cards.settled()
        decided = card(sandbox, thread, review["ts"])
        assert "Approved by" in text_of(decided)
        assert not review_messages(sandbox, "C0GENERAL", thread)  # no buttons came back
        assert "too late to matter" not in text_of(decided)


async def test_a_lost_preview_is_asked_again_by_the_next_repaint(env: SlackEnv) -> None:
    """Painting a pending card asks for a preview it lacks: a preview lost (to a restart, a
    failed write) comes back with the sweeper's next repaint."""
    sandbox, flow = env.sandbox, env.bot.flow
    thread, review = await start(env, "set the topic of #general to Launch on Friday")
    await card_with(sandbox, thread, review["ts"], "*After:* Launch on Friday")
    await flow.cards.settled()
    ref = review["metadata"]["event_payload"]["ref"]
    async with flow.store.pool.connection() as conn:
        await conn.execute("DELETE FROM review_previews WHERE ref = %s", (ref,))
    asked = len(sandbox.calls_of("conversations.info"))
    row = await flow.store.get(ref)
    assert row is not None
    await flow.effects.sync(row)
    await flow.cards.settled()
    again = await card_with(sandbox, thread, review["ts"], "*After:* Launch on Friday")
    assert len(sandbox.calls_of("conversations.info")) > asked
    assert review_messages(sandbox, "C0GENERAL", thread) and "Approve" in str(again["blocks"])


async def test_a_call_that_ran_without_review_shows_its_receipt_under_its_result(
    database_url: str,
) -> None:
    registry = ToolRegistry(builtin_entries()).with_policies({"post_message": "auto"}, "test")
    async with running_slack_env(database_url, registry=registry) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(
            ALICE, "#general", f'<@{BOT}> post "hi all" to #general'
        )
        [result] = await sandbox.wait_for(
            lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "returned:" in text_of(m)],
            WAIT,
        )
        assert_valid_blocks(result["blocks"])
        assert re.search(
            r"What it did:\* Posted in <#C0GENERAL> · <https?://[^|]+/archives/C0GENERAL/p\d+\|",
            text_of(result),
        ), text_of(result)
        assert not review_messages(sandbox, "C0GENERAL", thread)


async def test_closing_cancels_a_preview_still_running_and_waits_for_it(database_url: str) -> None:
    """At shutdown a preview that outlives the grace is cancelled, and ``close`` returns only
    once it has stopped: nothing is left running to use the pool after it closes."""
    slow = SlowPreview()
    registry = ToolRegistry([*builtin_entries(), ToolEntry(slow_note, preview=slow)])
    model = ScriptedModel([tool_calls(("slow_note", {"note": "a"})), AIMessage(content="ok")])
    async with running_slack_env(database_url, model=model, registry=registry) as env:
        await env.sandbox.post_message(ALICE, "#general", f"<@{BOT}> note a")
        try:
            await asyncio.wait_for(slow.started.wait(), WAIT)
            cards = env.bot.flow.cards
            running = list(cards._asking.values())
            assert running
            await cards.close(within=0.1)
            assert all(task.cancelled() for task in running)
        finally:
            slow.release.set()
