"""Pure Block Kit builders for what a call would do (its preview, on the review card) and what
it did (its receipt, on the decided card). No I/O; every block is within Slack's limits.

A preview's and a receipt's mrkdwn comes from the agent side (the tool's author): of its
``<…>`` markup only mentions (``<@U…>``) and channel links (``<#C…>``) are kept, and a
receipt's link is built here from its URL, so nothing the tool says can ping a channel or hide
a link's target. Redacted values are masked in every field (the caller gives the secrets).
Nothing is cut silently: a long message is split over several sections.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from bot import redaction
from bot.mrkdwn import escape
from graph import Preview

Block = dict[str, Any]

SECTION_LIMIT = 3000
CONTEXT_LIMIT = 3000
MESSAGE_SECTIONS = 8
"""A message of 4,000 characters, every one an entity, needs 7 sections of 3,000."""
PLACEHOLDER = ":hourglass_flowing_sand: _Working out what this will do…_"
NO_PREVIEW = ":grey_question: _No preview: I could not tell in time what this will do._"
PREVIEW_BLOCK = "review_preview"

_KEPT = re.compile(r"<(?:@[UW][A-Z0-9]+|#[CGD][A-Z0-9]+(?:\|[a-z0-9_-]{0,80})?)>")
_TOKEN = re.compile(r"<[^<>]*>|&(?:amp|lt|gt);|.", re.S)


def sanitized(text: str) -> str:
    """Agent-side mrkdwn with every ``<…>`` except a mention or channel link escaped."""
    out: list[str] = []
    pos = 0
    for match in _KEPT.finditer(text):
        out.append(text[pos : match.start()].replace("<", "&lt;").replace(">", "&gt;"))
        out.append(match.group())
        pos = match.end()
    out.append(text[pos:].replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


def _masked(text: str, secrets: Collection[str]) -> str:
    return redaction.mask(text, secrets)


def split_mrkdwn(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at a line break where one fits and never
    inside an entity or a ``<…>`` reference."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
            current = ""
        for token in _TOKEN.findall(line):
            if len(current) + len(token) > limit:
                pieces.append(current)
                current = ""
            current += token
    if current or not pieces:
        pieces.append(current)
    return pieces


def _section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _fit(text: str, limit: int) -> str:
    """A short field within ``limit``: cut between tokens, saying it was cut."""
    if len(text) <= limit:
        return text
    return split_mrkdwn(text, limit - 40)[0] + " _…(cut to fit Slack's limit)_"


def placeholder_blocks() -> list[Block]:
    """Shown at once on a card whose tool offers a preview, until the preview is in."""
    return [_context(PLACEHOLDER)]


def preview_blocks(preview: Preview | None, secrets: Collection[str] = ()) -> list[Block]:
    """The preview on the review card; ``None`` (failed, too slow) says so in words."""
    if preview is None:
        return [_context(NO_PREVIEW)]

    def shown(text: str) -> str:
        return _masked(sanitized(text), secrets)

    icon = ":mag:" if preview.ok else ":warning:"
    summary = shown(preview.summary) or "_(the preview said nothing)_"
    blocks = [_section(_fit(f"{icon} *Preview:* {summary}", SECTION_LIMIT), PREVIEW_BLOCK)]
    if preview.message is not None:
        pieces = split_mrkdwn(shown(preview.message) or " ")
        blocks.extend(_section(piece) for piece in pieces[:MESSAGE_SECTIONS])
    if preview.before is not None or preview.after is not None:
        before = escape(_masked(preview.before or "", secrets))
        after = escape(_masked(preview.after or "", secrets))
        blocks.append(_section(_fit(f"*Now:* {before}\n*After:* {after}", SECTION_LIMIT)))
    if preview.notes:
        notes = "\n".join(f"• {shown(note)}" for note in preview.notes)
        blocks.append(_context(_fit(notes, CONTEXT_LIMIT)))
    return blocks


def receipt_blocks(receipt: Mapping[str, Any], secrets: Collection[str] = ()) -> list[Block]:
    """What the call did, on the decided card: its summary and a link to what it made, or a
    failure in plain words."""
    summary = _masked(sanitized(str(receipt.get("summary") or "")), secrets)
    if receipt.get("failed"):
        return [_section(_fit(f":x: *Did not work.* {summary}", SECTION_LIMIT))]
    link = receipt.get("link")
    shown = summary
    if isinstance(link, str) and re.match(r"https?://[^\s<>|]+$", link):
        words = escape(_masked(str(receipt.get("link_text") or "open it"), secrets))
        words = words.replace("|", "¦")
        shown = f"{summary} · <{link}|{words}>"
    return [_section(_fit(f":receipt: *What it did:* {shown}", SECTION_LIMIT))]


def failure_blocks(tool_name: str, words: str) -> list[Block]:
    """A failed call's result in the thread: plain words, never the tool's error text."""
    return [_context(f":x: `{escape(tool_name)}` did not work"), _section(escape(words))]


def failure_text(tool_name: str, words: str) -> str:
    return f"{escape(tool_name)} did not work: {escape(words)}"[:3000]
