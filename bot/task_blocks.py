"""A reviewed call as a task (Slack's ``task_card`` block), pure.

Phases: ``pending`` (waiting for review) → ``approved`` (running) → ``done`` / ``failed``;
or ``declined`` (feedback) / ``expired``. Slack's task statuses are ``pending``,
``in_progress``, ``complete`` and ``error`` (slack_sdk ``TaskCardBlock``). The card names the
tool (the name people read) and links its review card; it never shows arguments, so nothing
redacted can appear on it. A new ``block_id`` per phase, as Slack asks of an updated block.
"""

from __future__ import annotations

from typing import Any

from bot.mrkdwn import truncate

PHASES: dict[str, tuple[str, str]] = {
    "pending": ("pending", "waiting for review"),
    "approved": ("in_progress", "approved, running"),
    "done": ("complete", "done"),
    "failed": ("error", "failed"),
    "declined": ("complete", "declined, not run"),
    "expired": ("complete", "expired, not run"),
}
TITLE_CHARS = 150
"""Kept short: a task's title is one line."""


def task_title(tool: str, phase: str) -> str:
    return truncate(f"{tool}: {PHASES[phase][1]}", TITLE_CHARS)


def task_blocks(ref: str, tool: str, phase: str, review_link: str | None) -> list[dict[str, Any]]:
    status, _ = PHASES[phase]
    card: dict[str, Any] = {
        "type": "task_card",
        "block_id": f"task:{ref}:{phase}"[:255],
        "task_id": ref,
        "title": task_title(tool, phase),
        "status": status,
    }
    if review_link:
        link = {"type": "link", "url": review_link, "text": "the review"}
        section = {
            "type": "rich_text_section",
            "elements": [{"type": "text", "text": "See "}, link],
        }
        card["details"] = {"type": "rich_text", "elements": [section]}
    return [card]


def task_text(tool: str, phase: str) -> str:
    """The notification line (and what a client without task cards shows)."""
    return task_title(tool, phase)
