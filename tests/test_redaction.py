"""The pure pieces behind "redacted stays redacted" and "fallback text is escaped": which forms
of a value are masked, and how escaped text is cut."""

from __future__ import annotations

import io
import json
import logging

from bot import blocks, logs
from bot.mrkdwn import escape
from bot.policy import Policy, ToolPolicy
from bot.redaction import MASK, mask, redacts_anything, secret_values
from graph import ToolResult
from tests.support.block_kit import assert_valid_blocks


def test_every_form_of_a_redacted_value_is_masked() -> None:
    secret = 'pa"ss <wörd> & co'
    values = secret_values({"token": secret, "channel": "#general"}, {"token"})
    for text in (
        f"set to {secret}",
        json.dumps({"token": secret}),  # JSON-encoded, non-ASCII escaped
        json.dumps({"token": secret}, ensure_ascii=False),
        "shown as " + escape(secret),  # Slack-escaped
    ):
        masked = mask(text, values)
        assert MASK in masked and "wörd" not in masked and "w\\u00f6rd" not in masked, masked
    assert mask("#general", values) == "#general"  # only redacted arguments


def test_structured_values_and_short_ones() -> None:
    values = secret_values({"keys": ["alpha-1", "beta-22"], "pin": 7, "on": "ab"}, {"keys", "on"})
    assert mask('ran with ["alpha-1", "beta-22"] and alpha-1', values) == (
        f"ran with {MASK} and {MASK}"
    )
    assert mask("about ab", values) == "about ab"  # too short to tell from a word
    assert not redacts_anything(Policy()) and redacts_anything(
        Policy(tools={"t": ToolPolicy(redact=frozenset({"x"}))})
    )


def test_escaped_text_is_cut_between_entities_and_within_limits() -> None:
    text = "&" * 5000 + "<!channel>"
    for limit in (5, 7, 3000):
        chunks = blocks.escaped_chunks(text, limit)
        assert "".join(chunks) == escape(text) and all(len(c) <= limit for c in chunks)
        assert all(chunk and not chunk.startswith(("amp;", "mp;", "p;")) for chunk in chunks)
    cut = blocks.escaped_within(text, 203)
    assert len(cut) <= 203 and cut.endswith("&amp;…")
    reply = blocks.reply_blocks(text)
    assert_valid_blocks(reply)
    assert "".join(b["text"]["text"] for b in reply) == escape(text)
    result = ToolResult("t1", "echo", "<!here> " + "<" * 3000, "success")
    assert_valid_blocks(blocks.tool_result_blocks(result))
    line = blocks.tool_result_text(result)
    assert line.startswith("echo: &lt;!here&gt;") and "<" not in line


def test_remembered_redacted_values_never_reach_a_log_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RedactSecrets(()))
    logger = logging.getLogger("test_redaction.remembered")
    logger.addHandler(handler)
    try:
        logs.remember_secrets(secret_values({"topic": "very private topic"}, {"topic"}))
        logger.warning("setting the topic to %r", "very private topic", extra={"t": "x"})
    finally:
        logger.removeHandler(handler)
    assert "very private" not in stream.getvalue() and logs.REDACTED in stream.getvalue()


def test_a_shown_request_masks_agent_inbox_s_copy_of_the_arguments_too() -> None:
    """The interrupt carries the call twice (the seed's ``tool_call`` and Agent Inbox's
    ``action_request``); a request shown with redacted arguments must not keep the other."""
    from bot.review.shown import with_args
    from graph.review import review_request

    call = {"name": "post_message", "args": {"channel": "#x", "text": "hunter2"}, "id": "t1"}
    tool = {"name": "post_message", "description": "Post.", "args_schema": {"properties": {}}}
    request = review_request(call, tool, None)  # type: ignore[arg-type]
    policy = ToolPolicy(redact=frozenset({"text"}))
    shown = with_args(request, policy.redacted(call["args"]))
    assert "hunter2" not in json.dumps(shown)
    assert shown["action_request"]["args"] == {"channel": "#x", "text": "[redacted]"}
