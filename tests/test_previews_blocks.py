"""Previews and receipts without a network: the blocks (Slack's limits, escaping, masking,
nothing cut silently), the records, the plain words of failures, the reply's opening, and how
a tool module declares its previews."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool

from bot import preview_blocks
from bot.preview_blocks import receipt_blocks, sanitized, split_mrkdwn
from graph import AgentContext, Preview, failure_words
from graph.offline import outcome_words
from graph.receipts import receipt_of
from graph.tools.registry import ToolConfigError, builtin_entries, load_tool_module
from graph.tools.slack import slack_text
from tests.support.block_kit import assert_valid_blocks

HUGE = "&<>" * 1400  # 4,200 characters, every one an entity once encoded


def texts(blocks: list[dict[str, Any]]) -> str:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(e["text"] for e in block.get("elements", []) if "text" in e)
    return "\n".join(out)


def test_every_preview_block_is_within_slack_limits() -> None:
    cases = [
        None,
        Preview(summary="x"),
        Preview(summary="s" * 5000, message=slack_text(HUGE), notes=("n" * 4000,) * 3),
        Preview(summary="t", before="b" * 4000, after="a" * 4000, ok=False),
        Preview(summary="", message=""),
    ]
    for preview in cases:
        blocks = preview_blocks.preview_blocks(preview)
        assert_valid_blocks(blocks)
        for block in blocks:
            if block["type"] == "context":
                assert len(block["elements"]) <= 10
                assert all(len(e["text"]) <= 3000 for e in block["elements"])
    assert_valid_blocks(preview_blocks.placeholder_blocks())
    assert_valid_blocks(receipt_blocks({"summary": "x" * 5000, "link": "https://e.x/" + "p" * 50}))
    assert_valid_blocks(receipt_blocks({"summary": "no", "failed": True}))
    assert_valid_blocks(preview_blocks.failure_blocks("t" * 80, "w" * 2900))


def test_a_card_with_every_argument_and_the_longest_preview_fits_one_message() -> None:
    from bot import blocks as card_blocks
    from bot.blocks import Progress

    args = {f"arg{i}": "v" * 3000 for i in range(30)}
    request: Any = {
        "question": "?",
        "tool_call": {"name": "post_message", "args": args, "id": "t1"},
        "tool": {"name": "post_message", "description": "d" * 500, "args_schema": {}},
        "requested_by": "U0ALICE",
    }
    preview = Preview(summary="s" * 3000, message=slack_text(HUGE), before="b", notes=("n",))
    shown = preview_blocks.preview_blocks(preview)
    body = card_blocks.review_blocks(request, "ref", Progress(("U0BOB",), 2), preview=shown)
    assert_valid_blocks(body)
    receipt = receipt_blocks({"summary": "r" * 3000, "link": "https://x.test/p1"})
    verdict = card_blocks.Verdict("continue", "U0BOB", __import__("datetime").datetime.now())
    assert_valid_blocks(card_blocks.decided_blocks(request, verdict, receipt=receipt))


def test_a_long_message_is_split_whole_never_inside_an_entity_or_reference() -> None:
    message = slack_text(HUGE) + " <@U0BOB> <#C0GENERAL>"
    pieces = split_mrkdwn(message)
    assert "".join(pieces) == message  # nothing cut
    assert all(len(piece) <= 3000 for piece in pieces)
    for piece in pieces:
        assert piece.count("&") == piece.count(";")  # whole entities only
    lines = "\n".join(f"line {i} " + "x" * 90 for i in range(100))
    assert "\n".join(split_mrkdwn(lines)) == lines  # cut at line breaks where one fits
    blocks = preview_blocks.preview_blocks(Preview(summary="s", message=message))
    assert texts(blocks[1:]).replace("\n", "") == message.replace("\n", "")


def test_only_mentions_and_channel_links_survive_in_agent_mrkdwn() -> None:
    said = sanitized("<@U0BOB> <#C0GENERAL|general> <!channel> <https://evil|safe> &amp; <b>")
    assert said.startswith("<@U0BOB> <#C0GENERAL|general> &lt;!channel&gt;")
    assert "&lt;https://evil|safe&gt;" in said and "&amp;" in said and "&lt;b&gt;" in said
    blocks = receipt_blocks({"summary": "<!here> made", "link": "javascript:alert(1)"})
    assert "<!here>" not in texts(blocks) and "javascript" not in texts(blocks)
    linked = receipt_blocks({"summary": "Posted", "link": "https://x.test/p1", "link_text": "a|b"})
    assert "<https://x.test/p1|a¦b>" in texts(linked)


def test_secrets_are_masked_in_every_field_in_every_form() -> None:
    secret = "s3cret&value"
    forms = {secret, "s3cret&amp;value"}
    preview = Preview(
        summary=f"about {slack_text(secret)}",
        message=slack_text(secret),
        before=secret,
        after=f"new {secret}",
        notes=(slack_text(secret),),
    )
    shown = texts(preview_blocks.preview_blocks(preview, forms))
    assert "s3cret" not in shown and shown.count("[redacted]") == 5
    receipt = texts(receipt_blocks({"summary": f"now {slack_text(secret)}"}, forms))
    assert "s3cret" not in receipt and "[redacted]" in receipt


def test_a_preview_crosses_as_plain_data_and_back() -> None:
    preview = Preview(summary="s", message="m", before="b", after="a", notes=("n",), ok=False)
    assert Preview.from_data(preview.to_data()) == preview
    assert Preview.from_data({"summary": 3, "notes": "x"}) == Preview(summary="3")


def test_receipts_from_a_tool_artifact_or_an_mcp_structured_result() -> None:
    assert receipt_of({"receipt": {"summary": "Made"}}) == {"summary": "Made"}
    mcp = {"structured_content": {"receipt": {"summary": "Filed", "link": "https://t/1"}}}
    assert receipt_of(mcp) == {"summary": "Filed", "link": "https://t/1"}
    assert receipt_of({"receipt": {"summary": "x", "link": "file:///etc"}}) == {"summary": "x"}
    assert receipt_of(None) is None and receipt_of({"receipt": {"link": "https://t"}}) is None


def test_failures_in_plain_words_without_technical_text() -> None:
    cases = {
        "Error: the tool failed: SlackToolError: Slack refused conversations.setTopic: "
        "not_in_channel": "I am not a member of that channel",
        "Error: the tool failed: SlackToolError: no channel named #x": "no channel named #x",
        "Error: the tool failed: ToolInvocationError: Error invoking tool 'a' with kwargs "
        "{'secret': 'abc'}": "the tool refused these arguments",
        "Error: the tool failed: McpCallError: the MCP server 'notes' did not answer within "
        "30 s": "the notes server did not answer in time",
        "Error: the tool failed: KeyError: 'x'": "The details are in my log",
    }
    for content, words in cases.items():
        said = failure_words(content)
        assert words in said, said
        assert "Error" not in said and "kwargs" not in said and "abc" not in said


def test_the_reply_says_done_only_when_every_call_worked() -> None:
    ok = ToolMessage(content="fine", tool_call_id="1", name="a")
    bad = ToolMessage(
        content="Error: the tool failed: ToolInvocationError: boom",
        tool_call_id="2",
        name="b",
        status="error",
    )
    assert outcome_words([ok]).startswith("Done.")
    assert outcome_words([bad]).startswith("That did not work.")
    assert outcome_words([bad, bad]).startswith("None of that worked.")
    both = outcome_words([ok, bad])
    assert both.startswith("Partly done: 1 of 2") and "ToolInvocationError" not in both


def test_every_builtin_slack_tool_has_a_preview() -> None:
    previews = {e.tool.name: e.preview for e in builtin_entries() if e.preview is not None}
    assert set(previews) == {"post_message", "set_channel_topic", "invite_users", "create_channel"}


@tool
def noted(note: str) -> str:
    """Note something."""
    return note


async def note_preview(args: dict[str, Any], context: AgentContext) -> Preview:
    return Preview(summary=f"would note {args['note']}")


def _module(name: str, **attrs: Any) -> str:
    module = types.ModuleType(name)
    module.noted = noted  # type: ignore[attr-defined]
    for key, value in attrs.items():
        setattr(module, key, value)
    sys.modules[name] = module
    return name


def test_a_tool_module_declares_previews_next_to_its_tools() -> None:
    [entry] = load_tool_module(_module("previews_ok", PREVIEWS={"noted": note_preview}))
    assert entry.preview is note_preview
    with pytest.raises(ToolConfigError, match="names no tool"):
        load_tool_module(_module("previews_bad_name", PREVIEWS={"other": note_preview}))
    with pytest.raises(ToolConfigError, match="not a function"):
        load_tool_module(_module("previews_bad_value", PREVIEWS={"noted": "nope"}))


def test_a_secret_is_masked_also_as_the_slack_tools_send_it() -> None:
    from bot.previews import posted_forms
    from bot.redaction import secret_values

    secret = "ping <@U0BOB> & co"
    forms = secret_values({"text": secret}, ["text"])
    preview = Preview(summary="s", message=slack_text(secret))
    assert "<@U0BOB> &amp; co" in texts(preview_blocks.preview_blocks(preview, forms))  # the gap
    shown = texts(preview_blocks.preview_blocks(preview, posted_forms(forms)))
    assert "U0BOB" not in shown and "[redacted]" in shown


def test_claude_is_told_a_failed_call_is_not_done() -> None:
    from graph.prompts import SYSTEM_PROMPT

    assert "never reply as if it was done" in SYSTEM_PROMPT
