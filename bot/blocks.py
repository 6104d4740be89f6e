"""Pure Block Kit builders for every message the bot posts. No I/O, so each is unit-tested and
validated against Slack's limits offline.

Everything that came from a person or the model is escaped (see `bot.mrkdwn`), and button values
carry only an opaque reference; the server looks the rest up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.mrkdwn import escape, show_value, slack_date, truncate, user_mention, visible
from bot.readable import (
    NO_NAMES,
    Names,
    inline_value,
    property_schema,
    readable_value,
    value_format,
)
from graph import ReviewRequest, ToolResult
from graph.types import ToolInfo

Block = dict[str, Any]

APPROVE = "review_approve"
EDIT = "review_edit"
FEEDBACK = "review_feedback"
GRANT = "review_grant"
"""Approve, and allow similar calls for a while (a standing approval: ``bot.grant_blocks``)."""
ACTIONS_BLOCK = "review_actions"
MAX_ARGS_SHOWN = 20
MAX_VALUE_CHARS = 900
SECTION_LIMIT = 3000


@dataclass(frozen=True)
class Verdict:
    """How a review ended, for the message that replaces the buttons."""

    action: str  # continue | update | feedback | expired
    by: str | None
    at: datetime
    changes: Mapping[str, tuple[Any, Any]] | None = None
    feedback: str | None = None
    approvers: tuple[str, ...] = ()  # everyone whose approval counted, with a quorum


def when(at: datetime) -> str:
    """A moment as Slack's date token: each reader sees it in their own time zone."""
    return slack_date(at.timestamp(), at.strftime("%Y-%m-%d %H:%M UTC"))


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(truncate(text, SECTION_LIMIT))}


def _context(*texts: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(truncate(t, SECTION_LIMIT)) for t in texts]}


def shown_text(value: Any) -> str:
    """A value as the reviewer reads it: invisible and direction-changing characters
    written out (``⟨U+202E⟩``, by `show_value`), so nothing on screen differs from what runs."""
    return show_value(value)


def format_value(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A value for display: short ones inline, long or multi-line ones in a code block."""
    shown = shown_text(value)
    cut = len(shown) - limit
    clipped = escape(truncate(shown, limit))
    note = f"\n_…{cut:,} more characters: open *Edit* to see all of it_" if cut > 0 else ""
    if "\n" in shown or len(shown) > 60 or not isinstance(value, str):
        return f"```{clipped.replace('```', 'ˋˋˋ')}```{note}"
    return f"{clipped}{note}"


def shown_argument(
    name: str, value: Any, schema: Mapping[str, Any], names: Names = NO_NAMES
) -> str:
    """One argument as people read it (`bot.readable`: names, dates, links, lists, each with
    its exact value), or its exact value when it has no readable form."""
    fmt = value_format(property_schema(schema, name), schema)
    return readable_value(value, fmt, names) or format_value(value)


def argument_blocks(
    args: Mapping[str, Any], schema: Mapping[str, Any] | None = None, names: Names = NO_NAMES
) -> list[Block]:
    blocks = [
        _section(f"*{escape(visible(name))}*\n{shown_argument(name, value, schema or {}, names)}")
        for name, value in list(args.items())[:MAX_ARGS_SHOWN]
    ]
    hidden = len(args) - MAX_ARGS_SHOWN
    if hidden > 0:
        blocks.append(_context(f"+{hidden} more arguments: open *Edit* to see them all"))
    if not args:
        blocks.append(_context("_no arguments_"))
    return blocks


def _heading(request: ReviewRequest, icon: str, label: str) -> list[Block]:
    tool = request["tool"]
    asked = request.get("requested_by")
    about = [truncate(escape(tool["description"]), 300)]
    if asked:
        about.append(f"Requested by {user_mention(asked)}")
    return [
        _section(f"{icon} *{label}:* `{escape(truncate(shown_name(request), 200))}`"),
        _context(" · ".join(about)),
        *_hints_block(tool),
    ]


def shown_name(request: ReviewRequest) -> str:
    """The tool's name as people read it: ``server.tool`` for an MCP tool (the model's name,
    ``server__tool``, is only for Claude), else the tool's own name."""
    return request["tool"].get("display_name") or request["tool_call"]["name"]


_HINT_WORDS = {
    "readOnlyHint": ("read-only", "changes things"),
    "destructiveHint": ("destructive", "not destructive"),
    "idempotentHint": ("idempotent", "not idempotent"),
    "openWorldHint": ("reaches outside systems", "closed world"),
}


def hints_text(tool: ToolInfo) -> str | None:
    """What an MCP server says about its tool, in words; None for other tools. The hints are
    the server's claims, not checked facts, and are labelled so."""
    if "server" not in tool:
        return None
    hints = tool.get("annotations") or {}
    words = [
        yes if hints[key] else no
        for key, (yes, no) in _HINT_WORDS.items()
        if isinstance(hints.get(key), bool)
    ]
    title = hints.get("title")
    named = f" “{escape(truncate(str(title), 100))}”" if title else ""
    said = ", ".join(words) if words else "no hints"
    return f"MCP server *{escape(tool['server'])}* says{named}: {said}"


def _hints_block(tool: ToolInfo) -> list[Block]:
    text = hints_text(tool)
    return [_context(f":electric_plug: {text}")] if text else []


@dataclass(frozen=True)
class Progress:
    """Quorum so far: who approved the current proposal, and an edit awaiting approvals."""

    approvals: tuple[str, ...]
    quorum: int
    edited_by: str | None = None
    changes: Mapping[str, tuple[Any, Any]] | None = None


def _changes_block(
    changes: Mapping[str, tuple[Any, Any]],
    title: str,
    schema: Mapping[str, Any] | None = None,
    names: Names = NO_NAMES,
) -> Block:
    """Each changed argument as ``~old~ → new``; people and channels by name (with their
    ids), anything else exactly as written."""

    def shown(name: str, value: Any, limit: int) -> str:
        fmt = value_format(property_schema(schema or {}, name), schema or {})
        return inline_value(value, fmt, names) or escape(truncate(shown_text(value), limit))

    lines = [
        f"• *{escape(visible(name))}*: ~{shown(name, old, 200)}~ → {shown(name, new, 400)}"
        for name, (old, new) in changes.items()
    ]
    return _section(f"*{title}*\n" + "\n".join(lines))


def _people(users: Sequence[str]) -> str:
    mentions = [user_mention(user) for user in users]
    return mentions[0] if len(mentions) == 1 else ", ".join(mentions[:-1]) + " and " + mentions[-1]


def review_blocks(
    request: ReviewRequest,
    ref: str,
    progress: Progress | None = None,
    policy_line: str | None = None,
    *,
    names: Names = NO_NAMES,
    grantable: bool = False,
    preview: Sequence[Block] = (),
    version: int = 0,
) -> list[Block]:
    """The review message: what will run, with what, for whom, and the three buttons (or the
    ones the agent accepts). Each button carries the review's ref and ``version``, the
    proposal this card shows (``button_value``): an Approve from a card painted before an
    edit is refused, never counted for arguments its clicker did not see.

    With a quorum, it also says how many approvals the current proposal has, and shows an edit
    that is waiting for approvals as old -> new. ``policy_line``: which policy rule the call is
    reviewed under (``bot.policy_blocks``), one context line. ``grantable``: the call's policy
    allows standing approvals, so a further button offers one (only where Approve is offered).
    ``preview``: what the call would do (``bot.preview_blocks``), under the arguments.
    """
    extra: list[Block] = [_context(policy_line)] if policy_line else []
    if progress and progress.changes:
        extra.append(
            _changes_block(
                progress.changes,
                f"Edited by {user_mention(progress.edited_by)}",
                request["tool"]["args_schema"],
                names,
            )
        )
    if progress and progress.quorum > 1:
        have = len(progress.approvals)
        who = f" ({_people(progress.approvals)})" if progress.approvals else ""
        extra.append(
            _context(f":ballot_box_with_check: {have} of {progress.quorum} approvals{who}")
        )
    return [
        *_heading(request, ":raised_hand:", "Approval needed"),
        *argument_blocks(request["tool_call"]["args"], request["tool"]["args_schema"], names),
        *preview,
        *extra,
        {
            "type": "actions",
            "block_id": ACTIONS_BLOCK,
            "elements": _allowed_buttons(request, button_value(ref, version), grantable),
        },
    ]


def button_value(ref: str, version: int) -> str:
    """A review button's value: the ref and the proposal version the card shows."""
    return f"{ref} {version}"


def parse_button_value(value: str) -> tuple[str, int]:
    """The ref and shown version of a button's value; a bare ref (a card painted before
    buttons carried versions) showed the first proposal, version 0."""
    ref, _, version = value.partition(" ")
    return ref, int(version) if version.isdigit() and len(version) < 10 else 0


def _allowed_buttons(request: ReviewRequest, ref: str, grantable: bool = False) -> list[Block]:
    """Approve, Edit and Feedback, or only those the agent accepts (``allowed_decisions``,
    from a graph on LangGraph Server); with ``grantable``, the standing-approval button, which
    approves too, so it is offered only beside Approve."""
    allowed = request.get("allowed_decisions")
    buttons = [
        ("approve", _button("Approve", APPROVE, ref, style="primary")),
        ("edit", _button("Edit", EDIT, ref)),
        ("feedback", _button("Feedback", FEEDBACK, ref)),
    ]
    if grantable:
        buttons.append(("approve", _button("Approve + allow similar…", GRANT, ref)))
    return [button for kind, button in buttons if allowed is None or kind in allowed]


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def review_fallback_text(request: ReviewRequest) -> str:
    """The notification line of a review; the tool's name is escaped like the blocks."""
    return f"Approval needed: {escape(truncate(shown_name(request), 80))}"


_VERDICT_LABELS = {
    "continue": (":white_check_mark:", "Approved", "Approved by"),
    "update": (":pencil2:", "Edited and approved", "Edited and approved by"),
    "feedback": (":speech_balloon:", "Sent back with feedback", "Feedback from"),
    "expired": (":hourglass:", "Expired", "Not decided in time; nothing ran. Expired"),
}


def decided_blocks(
    request: ReviewRequest,
    verdict: Verdict,
    *,
    names: Names = NO_NAMES,
    receipt: Sequence[Block] = (),
) -> list[Block]:
    """The review message after a decision: no buttons, and who decided what, when;
    ``receipt``: what the call did, once it ran (``bot.preview_blocks``)."""
    icon, label, who_label = _VERDICT_LABELS[verdict.action]
    args = dict(request["tool_call"]["args"])
    for name, (_, new) in (verdict.changes or {}).items():
        args[name] = new
    at = when(verdict.at)
    deciders = verdict.approvers or ((verdict.by,) if verdict.by else ())
    who = f"{who_label} {_people(deciders)}" if deciders else who_label
    schema = request["tool"]["args_schema"]
    blocks = [*_heading(request, icon, label), *argument_blocks(args, schema, names)]
    if verdict.changes:
        blocks.append(_changes_block(verdict.changes, "Changes", schema, names))
    if verdict.feedback:
        quoted = "\n".join(f"> {line}" for line in escape(verdict.feedback).splitlines())
        blocks.append(_section(f"{who}:\n{quoted}"))
        blocks.append(_context(at))
    else:
        blocks.append(_context(f"{who} · {at}"))
    blocks.extend(receipt)
    return blocks


def decided_text(request: ReviewRequest, verdict: Verdict) -> str:
    _, label, _ = _VERDICT_LABELS[verdict.action]
    return f"{label}: {escape(truncate(shown_name(request), 80))}"


def changed_args(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each argument whose value an edit changed, as (before, after)."""
    names = list(old) + [name for name in new if name not in old]
    return {
        name: (old.get(name), new.get(name)) for name in names if old.get(name) != new.get(name)
    }


def escaped_chunks(text: str, limit: int) -> list[str]:
    """``text`` escaped and split into pieces of at most ``limit`` characters, never inside an
    entity (a cut ``&am`` would show as garbage, or join with what follows)."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        piece = escape(char)
        if current and size + len(piece) > limit:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(piece)
        size += len(piece)
    if current:
        chunks.append("".join(current))
    return chunks


def escaped_within(text: str, limit: int, suffix: str = "…") -> str:
    """``text`` escaped, cut (between entities) so the result is at most ``limit`` long."""
    safe = escape(text)
    if len(safe) <= limit:
        return safe
    chunks = escaped_chunks(text, max(1, limit - len(suffix)))
    return (chunks[0] if chunks else "") + suffix


RESULT_CHARS = 2500
RESULT_TEXT_CHARS = 200
REPLY_TEXT_CHARS = 3000


def tool_result_blocks(result: ToolResult) -> list[Block]:
    """A tool's result; the caller has masked redacted values in ``result.content``."""
    icons = {"success": ":white_check_mark:", "error": ":warning:"}
    icon = icons.get(result.status, ":grey_question:")
    body = escaped_within(result.content, RESULT_CHARS).replace("```", "ˋˋˋ")
    return [_context(f"{icon} `{escape(result.tool_name)}` returned:"), _section(f"```{body}```")]


def tool_result_text(result: ToolResult) -> str:
    """The notification line of a tool result: escaped like the blocks, cut between
    entities."""
    return f"{escape(result.tool_name)}: {escaped_within(result.content, RESULT_TEXT_CHARS)}"


def reply_blocks(text: str) -> list[Block]:
    """The agent's words, escaped (no pings), split into sections within Slack's limit."""
    chunks = escaped_chunks(text, SECTION_LIMIT)[:40]
    return [_section(chunk) for chunk in chunks] or [_section("_(no reply)_")]


def reply_text(text: str) -> str:
    """The notification line of the agent's reply: escaped, cut between entities."""
    return escaped_within(text, REPLY_TEXT_CHARS)


def notice_blocks(text: str) -> list[Block]:
    return [_context(text)]


def pending_reminder_text(count: int) -> str:
    noun = "review" if count == 1 else "reviews"
    return (
        f"There {'is' if count == 1 else 'are'} {count} pending {noun} in this thread: "
        "decide them first, then ask again."
    )


def stale_text(action: str | None, by: str | None, at: datetime | None) -> str:
    """Tell a late clicker who decided, what, and when."""
    labels = {
        "continue": "approved",
        "update": "edited and approved",
        "feedback": "answered with feedback",
        "expired": "expired",
    }
    what = labels.get(action or "", "decided")
    moment = f" {when(at)}" if at else ""
    if action == "expired":
        return f"This review already expired{moment}; nothing ran."
    who = user_mention(by) if by else "someone"
    return f"This review was already {what} by {who}{moment}."
