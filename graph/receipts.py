"""What a call did, said after it ran: a tool's receipt, and a failure in plain words.

A tool gives a receipt by returning ``(content, {"receipt": {...}})`` with
``response_format="content_and_artifact"``: the content goes to the model as before, the
receipt to the people in the thread (``ToolResult.receipt``). An MCP tool gives one as a
``receipt`` object in its structured content. A receipt is a :class:`Receipt`: a ``summary``
in Slack mrkdwn (the bot keeps only mentions and channel links of its ``<…>`` markup, and masks
redacted values in it) and, optionally, a ``link`` to what the call made.

A call that failed has no receipt of its own: :func:`failure_words` says what went wrong in a
sentence for a person; the technical text stays with the model and in the logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

RECEIPT_KEY = "receipt"


class Receipt(TypedDict):
    """What a call did, for the people in the thread."""

    summary: str
    link: NotRequired[str]
    """A URL to what the call made (e.g. the posted message's permalink)."""
    link_text: NotRequired[str]
    failed: NotRequired[bool]


def receipt_of(artifact: Any) -> Receipt | None:
    """The receipt a tool put in its artifact (its own, or an MCP tool's structured content)."""
    if not isinstance(artifact, Mapping):
        return None
    found = artifact.get(RECEIPT_KEY)
    if found is None:
        structured = artifact.get("structured_content")
        found = structured.get(RECEIPT_KEY) if isinstance(structured, Mapping) else None
    if not isinstance(found, Mapping) or not isinstance(found.get("summary"), str):
        return None
    receipt = Receipt(summary=found["summary"])
    if isinstance(found.get("link"), str) and re.match(r"https?://", found["link"]):
        receipt["link"] = found["link"]
        if isinstance(found.get("link_text"), str):
            receipt["link_text"] = found["link_text"]
    return receipt


# What Slack's error codes mean for the person who approved the call.
_SLACK_WORDS = {
    "channel_not_found": "Slack could not find that channel (or I cannot see it)",
    "not_in_channel": "I am not a member of that channel",
    "is_archived": "that channel is archived",
    "name_taken": "a channel with that name already exists",
    "invalid_name": "that is not a valid channel name",
    "invalid_name_specials": "that is not a valid channel name",
    "invalid_name_required": "the channel needs a name",
    "invalid_name_maxlength": "that channel name is too long",
    "user_not_found": "one of those people does not exist in this workspace",
    "cant_invite_self": "I cannot invite myself",
    "restricted_action": "this workspace does not allow it",
    "missing_scope": "I lack the Slack permission for it",
    "ratelimited": "Slack asked me to slow down",
    "msg_too_long": "the message is too long for Slack",
    "too_long": "the text is too long for Slack",
}
_SLACK_REFUSED = re.compile(r"Slack refused ([\w.]+): (\w+)")
_NO_CHANNEL = re.compile(r"no channel named (#[a-z0-9_-]+)")
_MCP = re.compile(r"the MCP server '([a-z0-9-]+)' (did not answer within [\d.]+ s|failed)")


def failure_words(content: str) -> str:
    """A failed call, in a sentence for a person (no exception names, no arguments).

    Reads the error texts this project's tools produce (``SlackToolError``, ``McpCallError``,
    LangGraph's ``ToolInvocationError`` for arguments the tool refused); anything else gets a
    general sentence that points to the log."""
    refused = _SLACK_REFUSED.search(content)
    if refused:
        code = refused.group(2)
        reason = _SLACK_WORDS.get(code, f"Slack said “{code}”")
        return f"It did not work: {reason}. Nothing was changed."
    missing = _NO_CHANNEL.search(content)
    if missing:
        return f"It did not work: there is no channel named {missing.group(1)} that I can see."
    if "no Slack workspace is connected" in content:
        return "It did not work: no Slack workspace is connected to this conversation."
    server = _MCP.search(content)
    if server:
        what = "did not answer in time" if server.group(2).startswith("did") else "failed"
        return f"It did not work: the {server.group(1)} server {what}. The details are in my log."
    if "ToolInvocationError" in content:
        return "It did not run: the tool refused these arguments. The details are in my log."
    return "It did not work. The details are in my log."


def failure_receipt(content: str) -> Receipt:
    return Receipt(summary=failure_words(content), failed=True)
