"""Routing end to end through Slack (sandbox, signed HTTP, real PostgreSQL): a tool's reviews
posted in their own channel, linked both ways with the conversation; a DM review its requester
may not decide sent to the review channel (or, with none, said so); the routed card decided
there by the same rules, every copy painted, the result in the conversation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from bot.audit import AuditLog
from bot.blocks import Progress, review_blocks
from bot.policy import PolicyError, parse_policy
from bot.routing import conversation_block, with_conversation
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
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls

GENERAL = "C0GENERAL"


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


async def test_a_routed_review_is_decided_in_its_channel_and_answered_in_the_conversation(
    database_url: str, tmp_path: Path
) -> None:
    async with env_with(
        database_url, tmp_path, ROUTED, channel_with("finance-approvals", BOB)
    ) as env:
        sandbox = env.sandbox
        finance = channel_id(sandbox, "finance-approvals")
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note: ship it")
        [card] = await sandbox.wait_for(lambda: cards(sandbox, finance))
        pointer = await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "waits for"))

        # Both ways: the card links the conversation, the conversation links the card.
        conversation = f"/archives/{GENERAL}/p{thread.replace('.', '')}"
        assert conversation in text_of(card) and "this conversation" in text_of(card)
        assert f"<#{finance}>" in pointer[0]
        assert f"/archives/{finance}/p{card['ts'].replace('.', '')}" in pointer[0]
        assert not review_messages(sandbox, GENERAL, thread)  # no card in the conversation

        # The same rules on the routed card: Alice is not an approver of record_note.
        await sandbox.click_button(ALICE, finance, card["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE))
        assert "may decide" in refusal["text"] and RUNS == []

        # App Home and /approvals list it where it lives, to the approver who can see it there.
        ref = card["blocks"][-1]["elements"][0]["value"]
        shown = (await env.bot.flow.lister.waiting_for(BOB)).shown
        [waiting] = [review for review in shown if review.ref == ref]
        assert (waiting.channel_id, waiting.message_ts) == (finance, card["ts"])

        await sandbox.click_button(BOB, finance, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "Noted."))
        assert RUNS == ["ship it"]
        [painted] = cards(sandbox, finance)
        assert "Approved by <@U0BOB>" in text_of(painted)
        assert conversation in text_of(painted)  # the link survives the repaint
        assert not any(b.get("type") == "actions" for b in painted["blocks"])
        assert not [m for m in sandbox.messages(finance) if "Noted." in text_of(m)]
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
        finance = channel_id(sandbox, "finance-approvals")
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note: ship it")
        [card] = await sandbox.wait_for(lambda: cards(sandbox, finance))
        await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "waits for"))
        sandbox.workspace.post(
            sandbox.workspace.channel(GENERAL), BOT, "copy", blocks=card["blocks"], thread_ts=thread
        )
        [copy] = review_messages(sandbox, GENERAL, thread)
        await sandbox.click_button(BOB, GENERAL, copy["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(BOB))
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
        [card] = await sandbox.wait_for(lambda: cards(sandbox, desk))
        pointer = await sandbox.wait_for(lambda: said(sandbox, dm, asked, "waits for"))
        assert f"<#{desk}>" in pointer[0]
        assert "a direct message" in text_of(card)
        assert not review_messages(sandbox, dm, asked)

        await sandbox.click_button(BOB, desk, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, dm, asked, "Noted."))
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
        [card] = await sandbox.wait_for(lambda: review_messages(sandbox, dm, asked))
        assert not cards(sandbox, channel_id(sandbox, "approvals-desk"))
        await sandbox.click_button(BOB, dm, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, dm, asked, "Noted."))


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
        await sandbox.wait_for(lambda: review_messages(sandbox, dm, asked))
        [told] = await sandbox.wait_for(lambda: said(sandbox, dm, asked, "review_channel"))
        assert "nobody who may can see this DM" in told


async def test_a_channel_that_cannot_be_found_is_said_at_start_up_and_in_the_conversation(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.routing")
    policy = '[tools.record_note]\nchannel = "#nowhere"\n'
    async with env_with(database_url, tmp_path, policy, None) as env:
        assert "channel #nowhere not found" in caplog.text
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note: ship it")
        [card] = await sandbox.wait_for(lambda: review_messages(sandbox, GENERAL, thread))
        [told] = await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "#nowhere"))
        assert "could not find the channel" in told
        await sandbox.click_button(BOB, GENERAL, card["ts"], "review_approve")
        await sandbox.wait_for(lambda: said(sandbox, GENERAL, thread, "Noted."))


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
