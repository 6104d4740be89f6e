"""Routing end to end through Slack (sandbox, signed HTTP, real PostgreSQL): a tool's reviews
posted in their own channel, linked both ways with the conversation; a DM review its requester
may not decide sent to the review channel (or, with none, said so); the routed card decided
there by the same rules, every copy painted, the result in the conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from psycopg.types.json import Jsonb
from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import AuditLog
from bot.blocks import Progress, review_blocks
from bot.permissions import Approvers
from bot.policy import PolicyError, parse_policy
from bot.routing import (
    ChannelDirectory,
    Route,
    Router,
    card_thread_of,
    conversation_block,
    mentions,
    waits_in_text,
    with_conversation,
)
from bot.store import ReviewRow
from bot.sweeper import sweep_once
from bot.threads import SlackThread
from graph.types import ReviewRequest
from sandbox.server import Sandbox
from tests.support.block_kit import assert_valid_blocks
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

GENERAL = "C0GENERAL"
WAIT = 20.0  # seconds for a turn, a click and their posts, on a busy machine


def note_model() -> ScriptedModel:
    return ScriptedModel([tool_calls(("record_note", {"note": "ship it"})), AIMessage("Noted.")])


def channel_with(name: str, *members: str) -> Callable[[Sandbox], None]:
    def create(sandbox: Sandbox) -> None:
        room = sandbox.workspace.create_channel(name, ALICE)
        sandbox.workspace.invite(room.id, [BOT, *members])

    return create


def channel_id(sandbox: Sandbox, name: str) -> str:
    return next(c.id for c in sandbox.workspace.channels.values() if c.name == name)


def cards(sandbox: Sandbox, channel: str) -> list[dict[str, Any]]:
    """Top-level bot messages in ``channel`` that show a review (buttons or a verdict)."""
    return [m for m in sandbox.messages(channel) if m.get("bot_id") and "record_note" in text_of(m)]


def said(sandbox: Sandbox, channel: str, thread: str, words: str) -> list[str]:
    return [text_of(m) for m in sandbox.replies(channel, thread) if words in text_of(m)]


def env_with(
    database_url: str, tmp_path: Path, policy: str, before: Callable[[Sandbox], None] | None
) -> AbstractAsyncContextManager[SlackEnv]:
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    RUNS.clear()
    return running_slack_env(
        database_url,
        model=note_model(),
        registry=registry_with(),
        policy_file=path,
        before_bot=before,
    )


ROUTED = """\
[tools.record_note]
approvers = ["U0BOB"]
channel = "#finance-approvals"
"""


async def note_routed_to_finance(sandbox: Sandbox) -> tuple[str, str, dict[str, Any], str]:
    """Under ROUTED, Alice asks for a note in #general: its card goes to #finance-approvals and
    the conversation is told where it waits. (The channel's id, the conversation's ts, the card,
    what the conversation was told.)"""
    finance = channel_id(sandbox, "finance-approvals")
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note: ship it")
    [card] = await sandbox.wait_for(lambda: cards(sandbox, finance), within=WAIT)
    told = await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "waits for"), within=WAIT)
    return finance, thread, card, told[0]


async def test_a_routed_review_is_decided_in_its_channel_and_answered_in_the_conversation(
    database_url: str, tmp_path: Path
) -> None:
    async with env_with(
        database_url, tmp_path, ROUTED, channel_with("finance-approvals", BOB)
    ) as env:
        sandbox = env.sandbox
        finance, thread, card, pointer = await note_routed_to_finance(sandbox)

        # Both ways: the card links the conversation, the conversation links the card.
        conversation = f"/archives/{GENERAL}/p{thread.replace('.', '')}"
        assert conversation in text_of(card) and "this conversation" in text_of(card)
        assert f"<#{finance}>" in pointer
        assert f"/archives/{finance}/p{card['ts'].replace('.', '')}" in pointer
        assert not review_messages(sandbox, GENERAL, thread)  # no card in the conversation

        # The same rules on the routed card: Alice is not an approver of record_note.
        await sandbox.click_button(ALICE, finance, card["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE), within=WAIT)
        assert "may decide" in refusal["text"] and RUNS == []

        # App Home and /approvals list it where it lives, to the approver who can see it there.
        ref = review_ref(card)
        shown = (await env.bot.flow.lister.waiting_for(BOB)).shown
        [waiting] = [review for review in shown if review.ref == ref]
        assert (waiting.channel_id, waiting.message_ts) == (finance, card["ts"])

        await sandbox.click_button(BOB, finance, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "Noted."), within=WAIT)
        assert RUNS == ["ship it"]
        [painted] = cards(sandbox, finance)
        assert "Approved by <@U0BOB>" in text_of(painted)
        assert conversation in text_of(painted)  # the link survives the repaint
        assert not any(b.get("type") == "actions" for b in painted["blocks"])
        assert not [m for m in sandbox.messages(finance) if "Noted." in text_of(m)]
        # The name was resolved once, at start-up, and cached.
        assert len(sandbox.calls_of("conversations.list")) == 1
        trail = await AuditLog(env.bot.service.pool).query(tool="record_note")
        assert [(r["outcome"], r["decided_by"]) for r in trail if r["thread_id"].endswith(thread)][
            -1
        ] == ("approved", BOB)


async def test_a_click_on_the_routed_card_from_the_conversation_channel_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    """The card lives in the review channel: a ref carried elsewhere finds nothing."""
    async with env_with(
        database_url, tmp_path, ROUTED, channel_with("finance-approvals", BOB)
    ) as env:
        sandbox = env.sandbox
        _, thread, card, _ = await note_routed_to_finance(sandbox)
        sandbox.workspace.post(
            sandbox.workspace.channel(GENERAL), BOT, "copy", blocks=card["blocks"], thread_ts=thread
        )
        [copy] = review_messages(sandbox, GENERAL, thread)
        await sandbox.click_button(BOB, GENERAL, copy["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(BOB), within=WAIT)
        assert "doesn't belong" in refusal["text"] and RUNS == []


DM_POLICY = """\
[defaults]
approvers = ["U0BOB"]
review_channel = "#approvals-desk"
"""


async def test_a_dm_review_its_requester_may_not_decide_goes_to_the_review_channel(
    database_url: str, tmp_path: Path
) -> None:
    async with env_with(
        database_url, tmp_path, DM_POLICY, channel_with("approvals-desk", BOB)
    ) as env:
        sandbox = env.sandbox
        desk = channel_id(sandbox, "approvals-desk")
        dm = sandbox.open_dm(CAROL)
        asked = await sandbox.post_message(CAROL, BOT, "note: ship it")
        [card] = await sandbox.wait_for(lambda: cards(sandbox, desk), within=WAIT)
        pointer = await sandbox.wait_for(lambda: said(sandbox, dm, asked, "waits for"), within=WAIT)
        assert f"<#{desk}>" in pointer[0]
        assert "a direct message" in text_of(card)
        assert not review_messages(sandbox, dm, asked)

        await sandbox.click_button(BOB, desk, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, dm, asked, "Noted."), within=WAIT)
        assert RUNS == ["ship it"]
        assert "Approved by <@U0BOB>" in text_of(cards(sandbox, desk)[0])


async def test_a_dm_review_its_requester_may_decide_stays_in_the_dm(
    database_url: str, tmp_path: Path
) -> None:
    async with env_with(
        database_url, tmp_path, DM_POLICY, channel_with("approvals-desk", BOB)
    ) as env:
        sandbox = env.sandbox
        dm = sandbox.open_dm(BOB)
        asked = await sandbox.post_message(BOB, BOT, "note: ship it")
        [card] = await sandbox.wait_for(lambda: review_messages(sandbox, dm, asked), within=WAIT)
        assert not cards(sandbox, channel_id(sandbox, "approvals-desk"))
        await sandbox.click_button(BOB, dm, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, dm, asked, "Noted."), within=WAIT)


async def test_without_a_review_channel_the_dm_is_told_and_start_up_warns(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.routing")
    policy = '[defaults]\napprovers = ["U0BOB"]\n'
    async with env_with(database_url, tmp_path, policy, None) as env:
        assert "no review_channel for" in caplog.text and "record_note" in caplog.text
        sandbox = env.sandbox
        dm = sandbox.open_dm(CAROL)
        asked = await sandbox.post_message(CAROL, BOT, "note: ship it")
        await sandbox.wait_for(lambda: review_messages(sandbox, dm, asked), within=WAIT)
        [told] = await sandbox.wait_for(
            lambda: said(sandbox, dm, asked, "review_channel"), within=WAIT
        )
        assert "nobody who may can see this DM" in told


async def test_a_channel_that_cannot_be_found_is_said_at_start_up_and_in_the_conversation(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.routing")
    policy = (
        '[tools.record_note]\nchannel = "#nowhere"\n\n[tools.weather_search]\nchannel = "C0NOPE"\n'
    )
    async with env_with(database_url, tmp_path, policy, None) as env:
        assert "channel #nowhere not found" in caplog.text
        assert "channel C0NOPE not found" in caplog.text
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note: ship it")
        [card] = await sandbox.wait_for(
            lambda: review_messages(sandbox, GENERAL, thread), within=WAIT
        )
        [told] = await sandbox.wait_for(
            lambda: said(sandbox, GENERAL, thread, "#nowhere"), within=WAIT
        )
        assert "could not find the channel" in told
        await sandbox.click_button(BOB, GENERAL, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "Noted."), within=WAIT)


# -- the pure parts -------------------------------------------------------------------------


def test_routing_and_escalation_settings_are_read_and_checked() -> None:
    policy = parse_policy(
        '[defaults]\nreview_channel = "C0DESK"\n\n[tools.post_message]\nchannel = "#fin"\n'
        'escalate_after = "30m"\nescalate_to = ["S0ONCALL", "U0BOB"]\n'
    )
    tool = policy.for_tool("post_message")
    assert (tool.channel, tool.review_channel) == ("#fin", "C0DESK")
    assert tool.escalate_after_seconds == 1800
    assert tool.escalate_to == frozenset({"S0ONCALL", "U0BOB"})
    assert policy.for_tool("other").escalate_to == frozenset()
    for bad, words in [
        ('channel = "finance"', "line 2: channel must be a channel name"),
        ('escalate_after = "30m"', "escalate_after needs escalate_to"),
        ('escalate_to = ["U0BOB"]', "escalate_to needs escalate_after"),
        ('escalate_to = ["bob"]\nescalate_after = "1m"', "line 2: escalate_to must be"),
        ('ttl = "10m"\nescalate_after = "1h"\nescalate_to = ["U0B0B"]', "shorter than ttl"),
    ]:
        with pytest.raises(PolicyError, match=words):
            parse_policy(f"[tools.post_message]\n{bad}\n", "p.toml")


def test_a_routed_card_stays_within_slacks_limits() -> None:
    request = ReviewRequest(
        question="",
        tool_call={
            "name": "post_message",
            "args": {f"a{i}": "x" * 900 for i in range(40)},
            "id": "call-1",
        },
        tool={"name": "post_message", "description": "", "args_schema": {}},
        requested_by=ALICE,
    )
    body = review_blocks(request, "r" * 22, Progress((ALICE,), 3, ALICE, {"a1": ("x", "y")}))
    link = "https://sandbox.slack.com/archives/D0CAROL/p1700000000000100?thread_ts=1.2&cid=D0C"
    routed = with_conversation(body, link, "D0CAROL")
    assert_valid_blocks(routed)
    assert routed[-2] == conversation_block(link, "D0CAROL") and routed[-1]["type"] == "actions"
    assert_valid_blocks(with_conversation(body[:-1], None, GENERAL))


def test_a_routed_card_says_where_it_was_asked_for() -> None:
    link = "https://sandbox.slack.com/archives/C0GENERAL/p1"

    def context(text: str) -> dict[str, Any]:
        return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}

    assert conversation_block(link, "D0CAROL") == context(
        f"Asked in <{link}|this conversation> (a direct message)"
    )
    assert conversation_block(None, GENERAL) == context(f"Asked in <#{GENERAL}>")
    block = conversation_block(None, GENERAL)
    first, second = {"type": "section"}, {"type": "divider"}
    buttons = {"type": "actions", "elements": []}
    assert with_conversation([first, second, buttons], None, GENERAL) == [
        first,
        second,
        block,
        buttons,
    ]
    assert with_conversation([first, second], None, GENERAL) == [first, second, block]
    assert with_conversation([], None, GENERAL) == [block]


@pytest.mark.parametrize("heading", ["#### Routing", "#### Escalation"])
def test_the_readme_examples_parse(heading: str) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index(heading) :]
    start = section.index("```toml") + len("```toml")
    policy = parse_policy(section[start : section.index("```\n", start)], "README")
    tool = policy.for_tool("pay_invoice")
    assert tool.channel == "#finance-approvals" or tool.escalate_to == frozenset({"S0ONCALL"})


async def handled(env: SlackEnv, event_id: str, within: float = WAIT) -> None:
    """Until the first handler marked the event done (it posts the review first)."""
    deadline = time.monotonic() + within
    while True:
        async with env.bot.service.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT status FROM slack_events WHERE event_id = %s", (event_id,)
            )
            row = await cursor.fetchone()
        if row is not None and row["status"] == "done":
            return
        assert time.monotonic() < deadline, f"event {event_id} still being handled"
        await asyncio.sleep(0.05)


async def test_a_routed_card_shown_before_a_crash_is_found_again_not_posted_twice(
    database_url: str, tmp_path: Path
) -> None:
    """The poster died after posting the card in its channel and before storing it: whoever
    finishes the work finds the card there (by its metadata) and adopts it."""
    async with env_with(
        database_url, tmp_path, ROUTED, channel_with("finance-approvals", BOB)
    ) as env:
        sandbox = env.sandbox
        finance, thread, card, _ = await note_routed_to_finance(sandbox)
        [mention] = [
            d.body
            for d in sandbox.workspace.deliveries
            if d.body.get("event", {}).get("type") == "app_mention"
            and d.body["event"]["ts"] == thread
        ]
        await handled(env, mention["event_id"])
        async with env.bot.service.pool.connection() as conn:
            await conn.execute(
                "UPDATE slack_reviews SET message_ts = NULL, message_copies = '{}' "
                "WHERE thread_ts = %s",
                (thread,),
            )
            await conn.execute(
                "UPDATE slack_events SET status = 'handling', body = %s, "
                "claimed_at = now() - interval '1 hour' WHERE event_id = %s",
                (Jsonb(mention), mention["event_id"]),
            )
        assert (await sweep_once(env.bot.flow, stuck_after=60)).reanswered == 1
        assert [m["ts"] for m in cards(sandbox, finance)] == [card["ts"]]
        assert len(said(sandbox, GENERAL, thread, "waits for")) == 1
        await sandbox.click_button(BOB, finance, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "Noted."), within=WAIT)
        assert "Approved by" in text_of(cards(sandbox, finance)[0])


def test_a_cards_thread_and_who_joined_its_approvers() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    here = ReviewRow(
        "r", "t", "i", "T1", GENERAL, "1.0", "2.0", "record_note", {}, "pending", None, None, None
    )  # type: ignore[arg-type]
    assert card_thread_of(here) == SlackThread("T1", GENERAL, "1.0")
    routed = dataclasses.replace(here, card_channel="C0FIN")
    assert card_thread_of(routed) == SlackThread("T1", "C0FIN", "2.0")
    assert card_thread_of(dataclasses.replace(routed, message_ts=None)).channel_id == GENERAL
    waiting = dataclasses.replace(here, escalate_to=("S0ONCALL", "U0BOB"))
    assert waiting.escalated_to == frozenset()
    assert dataclasses.replace(waiting, escalated_at=at).escalated_to == {"S0ONCALL", "U0BOB"}
    assert mentions({"U0BOB", "S0ONCALL"}) == "<!subteam^S0ONCALL> <@U0BOB>"


async def test_four_eyes_sends_a_dm_review_to_the_review_channel() -> None:
    """Anyone may approve, but not the person who asked: in their DM nobody else would see it."""
    policy = parse_policy('[defaults]\nfour_eyes = true\nreview_channel = "C0DESK"\n')
    client = AsyncWebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/")  # never called
    router = Router(ChannelDirectory(client), Approvers(policy, client))
    request = ReviewRequest(
        question="",
        tool_call={"name": "record_note", "args": {}, "id": "call-1"},
        tool={"name": "record_note", "description": "", "args_schema": {}},
        requested_by=CAROL,
    )
    dm = SlackThread("T1", "D0CAROL", "1.0")
    tool = policy.for_call("record_note", {})
    assert await router.route(dm, request, tool) == Route("C0DESK")
    relaxed = dataclasses.replace(tool, policy=dataclasses.replace(tool.policy, four_eyes=False))
    assert await router.route(dm, request, relaxed) == Route()  # she may decide it herself
    assert await router.route(SlackThread("T1", GENERAL, "1.0"), request, tool) == Route()


def test_a_link_that_could_break_out_of_its_label_is_left_out() -> None:
    assert conversation_block("https://x/a|<!channel>", GENERAL)["elements"][0]["text"] == (
        f"Asked in <#{GENERAL}>"
    )
    assert "<" not in waits_in_text("C0FIN", "javascript:alert(1)").replace("<#C0FIN>", "")
