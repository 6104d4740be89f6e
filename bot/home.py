""" "What is waiting for me?": the App Home tab and the ``/approvals`` answer.

A review message scrolls away in a busy channel; an approver should not have to hunt for it.
Both surfaces show the same list, built here by pure functions (no I/O, so each is validated
against Block Kit offline), plus the one query they need. Which reviews a person *may* decide is
the policy's call (see ``bot.listeners.home``); this module only reads and draws.

Text from people and the model is escaped (no pings), and each entry links to its thread rather
than carrying buttons: deciding happens on the review message, where everyone sees it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import tuple_row

from bot.mrkdwn import escape, show_value, truncate, user_mention
from graph.db import Pool

Block = dict[str, Any]

MAX_SHOWN = 20
SCAN_LIMIT = 1000  # pending rows read per request; a backlog beyond this is reported as "N+"
SUMMARY_CHARS = 140
HOME_TITLE = "Reviews waiting for you"
EMPTY_TEXT = (
    ":sparkles: *Nothing is waiting for you.* When the agent asks to do something you may "
    "approve, it shows up here."
)

# A routed card (bot.routing) is linked, and shown to whoever can see the channel it lives in.
# The request is ``json`` text (about 2 kB: the call, the tool's schema, Agent Inbox's copy of
# the arguments), and parsing it was most of this query's time, so the three fields the list
# needs are kept beside it (``listed_args``, ``listed_by``, ``listed_requesters``, set from
# the request by a trigger: bot migration step 13). A row written before that step has
# ``listed_args`` NULL, and only for such a row does the lateral parse its request, once
# (``json_to_record``, as before the step): ``OFFSET 0`` keeps the planner from flattening the
# subquery, so its filter stays a one-time filter and the parse is never run for a row that
# has the columns. COALESCE so picks the columns or the parse, never a mix. Only what a list
# entry and its policy need is read, in ``PendingRow``'s order; JSON comes back as text,
# decoded by ``json.loads`` here (psycopg's JSON loader costs about three times as much).
PENDING_SQL = """
    SELECT ref, tool_name, COALESCE(listed_args, parsed.args)::text, proposed_edit::text,
           COALESCE(listed_by, parsed.requested_by),
           COALESCE(listed_requesters, parsed.requesters)::text,
           COALESCE(card_channel, channel_id),
           CASE WHEN card_channel IS NULL THEN thread_ts ELSE COALESCE(message_ts, thread_ts)
           END, message_ts, created_at, policy_match::text,
           CASE WHEN escalated_at IS NULL THEN NULL ELSE to_json(escalate_to)::text END
    FROM slack_reviews
    LEFT JOIN LATERAL (
        SELECT q.tool_call -> 'args' AS args, q.requested_by, q.requesters
        FROM json_to_record(request) AS q(tool_call json, requested_by text, requesters json)
        WHERE listed_args IS NULL
        OFFSET 0
    ) AS parsed ON true
    WHERE status = 'pending'
    ORDER BY created_at DESC, ref
    LIMIT %s
"""
PendingRow = tuple[
    str,  # ref
    str,  # tool_name
    str | None,  # the call's arguments as proposed (JSON)
    str | None,  # proposed_edit (JSON)
    str | None,  # requested_by
    str | None,  # requesters (JSON)
    str,  # channel_id: the card's channel when routed
    str,  # thread_ts: the card's message when routed
    str | None,  # message_ts
    datetime,  # created_at
    str | None,  # policy_match (JSON)
    str | None,  # escalated_to (JSON): NULL until it escalated
]
"""Hashable (text, not lists): a row is the key of the review it builds (``LatestScan``)."""


@dataclass(frozen=True, slots=True)
class WaitingReview:
    """A pending review as the list shows it (a Home open builds a thousand: slots make each
    about a third cheaper to build)."""

    ref: str
    tool_name: str
    args: Mapping[str, Any]
    requested_by: str | None
    channel_id: str
    thread_ts: str
    message_ts: str | None
    created_at: datetime
    requesters: tuple[str, ...] = ()
    """Everyone whose words led to the call (four-eyes refuses all of them)."""
    proposed: Mapping[str, Any] | None = None
    """The arguments as the agent proposed them (``args`` has an edit awaiting its quorum)."""
    policy_match: Mapping[str, Any] | None = None
    """The policy rule the review was registered under (``bot.policy_rules``)."""
    edit: Mapping[str, Any] | None = None
    escalated_to: frozenset[str] = frozenset()
    """Who joined its approvers when it escalated (README "Escalation"); none before."""


def current_args(proposed: Mapping[str, Any], edit: Mapping[str, Any] | None) -> dict[str, Any]:
    """The arguments that would run: an edit awaiting its quorum replaces the proposal, in the
    order the proposal gave (``proposed_edit`` is jsonb, which sorts its keys)."""
    if edit is None:
        return dict(proposed)
    ordered = {name: edit[name] for name in proposed if name in edit}
    ordered.update(edit)
    return ordered


@dataclass(frozen=True)
class Waiting:
    """What one person sees: the newest reviews they may decide, and how many more there are."""

    shown: Sequence[WaitingReview]
    more: int = 0
    more_is_lower_bound: bool = False  # the scan stopped at SCAN_LIMIT rows


def waiting_from(reviews: Sequence[WaitingReview], *, complete: bool = True) -> Waiting:
    """Split a person's reviews (newest first) into the shown ones and a count of the rest;
    ``complete`` is False when the scan stopped early, so the count is a lower bound."""
    return Waiting(
        shown=tuple(reviews[:MAX_SHOWN]),
        more=max(0, len(reviews) - MAX_SHOWN),
        more_is_lower_bound=not complete,
    )


class LatestScan:
    """The reviews the latest scan built, by their row.

    Every App Home open scans the same newest pending rows again, and building their thousand
    ``WaitingReview`` objects was most of the scan's Python time. ``waiting_review`` is a
    function of the row alone, so a review built from an equal row is exact: a row that changed
    in any column read (an edit proposed, an escalation, the card posted) is a new key and is
    built again. Each scan replaces the whole map, so it holds one scan's rows at most
    (``SCAN_LIMIT``). Reviews are shared between scans: they are frozen, and their mappings are
    never changed in place (``Policy.redacted`` and ``dataclasses.replace`` copy). No await
    between reading and replacing the map, so concurrent scans on one event loop cannot mix.
    """

    def __init__(self) -> None:
        self._built: dict[PendingRow, WaitingReview] = {}

    def forget(self) -> None:
        """Build every review of the next scan anew (the benchmark's first-scan figure)."""
        self._built = {}

    def reviews(self, rows: Sequence[PendingRow]) -> list[WaitingReview]:
        previous = self._built
        reviews = [
            known if (known := previous.get(row)) is not None else waiting_review(row)
            for row in rows
        ]
        self._built = dict(zip(rows, reviews, strict=True))
        return reviews


LATEST_SCAN = LatestScan()


async def pending_reviews(pool: Pool, limit: int = SCAN_LIMIT) -> list[WaitingReview]:
    """Pending reviews, newest first, at most ``limit``."""
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=tuple_row)
        await cursor.execute(PENDING_SQL, (limit,))
        rows: list[PendingRow] = await cursor.fetchall()
    return LATEST_SCAN.reviews(rows)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def waiting_review(row: PendingRow) -> WaitingReview:
    """One ``PENDING_SQL`` row as the list holds it. Arguments that are not an object read as
    none, an edit that is not one as no edit; ``current_args`` makes ``args`` what would run."""
    ref, tool_name, args_text, edit_text, requested_by, requesters, channel_id, thread_ts = row[:8]
    message_ts, created_at, match_text, escalated_to = row[8:]
    proposed = _json(args_text)
    proposed = proposed if isinstance(proposed, dict) else {}
    edit = _json(edit_text)
    edit = edit if isinstance(edit, dict) else None
    return WaitingReview(
        ref=ref,
        tool_name=tool_name,
        args=current_args(proposed, edit),
        requested_by=requested_by,
        requesters=tuple(str(r) for r in _json(requesters) or ()),
        channel_id=channel_id,
        thread_ts=thread_ts,
        message_ts=message_ts,
        created_at=created_at,
        proposed=proposed,
        policy_match=_json(match_text),
        edit=edit,
        escalated_to=frozenset(_json(escalated_to) or ()),
    )


# -- pure pieces -------------------------------------------------------------------------------


def summarize_args(args: Mapping[str, Any], limit: int = SUMMARY_CHARS) -> str:
    """``name=value, …`` on one line, cut to ``limit`` characters, then escaped (escaping last
    so an entity like ``&amp;`` is never cut in half)."""
    if not args:
        return "_no arguments_"
    text = ", ".join(f"{name}={show_value(value)}" for name, value in args.items())
    return escape(truncate(" ".join(text.split()), limit))


def age_text(created: datetime, now: datetime) -> str:
    """A rough age ("3 min ago"): enough to see what has waited long, in anyone's time zone."""
    seconds = max(0, int((now - created).total_seconds()))
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if unit == 'day' and count != 1 else ''} ago"
    return "just now"  # pragma: no cover - the loop always returns


def thread_link(workspace_url: str, channel: str, thread_ts: str, message_ts: str | None) -> str:
    """Slack's archive link to the review message inside its thread.

    ``workspace_url`` is ``auth.test``'s ``url`` (``https://team.slack.com/``); the message
    part is its ts without the dot, and ``thread_ts``/``cid`` open the thread around it.
    """
    base = workspace_url if workspace_url.endswith("/") else workspace_url + "/"
    ts = message_ts or thread_ts
    return f"{base}archives/{channel}/p{ts.replace('.', '')}?thread_ts={thread_ts}&cid={channel}"


def _safe_url(url: str) -> bool:
    """A link goes into ``<url|label>``: it must not contain the characters that end it."""
    return url.startswith(("https://", "http://")) and not any(c in url for c in "<>| \n")


def review_entry(review: WaitingReview, *, now: datetime, workspace_url: str | None) -> list[Block]:
    """Two blocks per review: what would run, then who asked, how long ago, and where."""
    head = f"*`{escape(truncate(review.tool_name, 80))}`*  {summarize_args(review.args)}"
    about = [
        f"Asked by {user_mention(review.requested_by)}" if review.requested_by else "Asked",
        age_text(review.created_at, now),
    ]
    if workspace_url:
        url = thread_link(workspace_url, review.channel_id, review.thread_ts, review.message_ts)
        if _safe_url(url):
            about.append(f"<{url}|Open the thread>")
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": truncate(head, 3000)}},
        _context(" · ".join(about)),
    ]


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _count_line(waiting: Waiting) -> str:
    total = len(waiting.shown) + waiting.more
    plus = "+" if waiting.more_is_lower_bound else ""
    noun = "review" if total == 1 and not plus else "reviews"
    return f"{total}{plus} {noun} you may decide, newest first."


def _more_line(waiting: Waiting) -> str:
    plus = "+" if waiting.more_is_lower_bound else ""
    return (
        f"…and {waiting.more}{plus} more. Decide the ones above, or find the rest in "
        "their channels."
    )


def waiting_blocks(
    waiting: Waiting, *, now: datetime, workspace_url: str | None, heading: bool = True
) -> list[Block]:
    """The list itself, shared by App Home and ``/approvals``; at most 44 blocks."""
    blocks: list[Block] = []
    if heading:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": HOME_TITLE}})
    if not waiting.shown:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": EMPTY_TEXT}})
        return blocks
    blocks.append(_context(_count_line(waiting)))
    for review in waiting.shown:
        if heading:  # the Home tab has room for dividers; a message (50 blocks) does not
            blocks.append({"type": "divider"})
        blocks.extend(review_entry(review, now=now, workspace_url=workspace_url))
    if waiting.more:
        blocks.append(_context(_more_line(waiting)))
    return blocks


def home_view(waiting: Waiting, *, now: datetime, workspace_url: str | None) -> dict[str, Any]:
    """The App Home tab (``views.publish``)."""
    return {
        "type": "home",
        "blocks": waiting_blocks(waiting, now=now, workspace_url=workspace_url),
    }


def approvals_message(
    waiting: Waiting, *, now: datetime, workspace_url: str | None
) -> tuple[str, list[Block]]:
    """The ephemeral ``/approvals`` answer: fallback text and blocks (no dividers, so 20
    entries stay within a message's 50 blocks)."""
    text = _count_line(waiting) if waiting.shown else "Nothing is waiting for you."
    heading: Block = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": f"*{HOME_TITLE}*"},
    }
    body = waiting_blocks(waiting, now=now, workspace_url=workspace_url, heading=False)
    return text, [heading, *body]
