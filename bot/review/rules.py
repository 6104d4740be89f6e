"""The pure rules of a review: who may decide, what a click may do, quorum arithmetic, expiry.

No I/O here: the effects (``bot.review.effects``, ``bot.review.clicks``) gather the facts (the
row, group membership, the clock of the database) and ask these functions what they mean, so
each rule is tested in microseconds without a database (``tests/test_review_rules.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from graph.decisions import DecisionKind

# -- who may decide ------------------------------------------------------------------------


def approver_groups(allowed: frozenset[str] | None) -> list[str]:
    """The user groups (ids starting with ``S``) whose members may decide, in a stable order."""
    return sorted(i for i in allowed or () if i.startswith("S"))


def named_approver(allowed: frozenset[str] | None, user: str) -> bool:
    """True if ``user`` may decide without a group lookup: nobody is configured (anyone who
    can see the message decides), or they are named themselves."""
    return allowed is None or user in allowed


def four_eyes_forbids(
    four_eyes: bool, user: str, requested_by: str | None, requesters: Iterable[str] | None
) -> bool:
    """Four-eyes: nobody whose words led to a call may approve it, neither the author of the
    turn's message (``requested_by``) nor anyone else whose message is in the conversation
    before it (``requesters``): otherwise Alice asks, a friend says "yes", and Alice approves
    her own request."""
    if not four_eyes:
        return False
    return user == requested_by or user in set(requesters or ())


def four_eyes_applies(kind: DecisionKind) -> bool:
    """A requester may still answer with Feedback; only running the call needs other eyes."""
    return kind != "feedback"


# -- what a click may do -------------------------------------------------------------------

Admission = Literal[
    "wrong_channel", "not_approver", "four_eyes", "stale", "expired", "changed", "admitted"
]


@dataclass(frozen=True)
class ClickFacts:
    """What is known about a click on a review that exists, gathered before the rule runs."""

    kind: DecisionKind
    clicked_in: str | None
    """The channel the click came from (None: a modal submit, which names no channel)."""
    review_channel: str
    is_approver: bool
    four_eyes_forbidden: bool
    status: str
    lapsed: bool
    card_is_current: bool = True
    """The clicked card showed the review's current proposal (always, for a modal submit)."""


BOUND_TO_WHAT_WAS_SHOWN: frozenset[DecisionKind] = frozenset({"approve", "edit"})
"""The decisions that run arguments someone was shown: an Approve those on its card, an Edit
those of its form (and the ones the form kept as proposed). Feedback runs nothing."""


def admission(facts: ClickFacts) -> Admission:
    """What a click may do, in the order people are told: a ref carried into another
    conversation finds nothing; then who may decide; then whether the review still waits."""
    if facts.clicked_in and facts.clicked_in != facts.review_channel:
        return "wrong_channel"
    if not facts.is_approver:
        return "not_approver"
    if four_eyes_applies(facts.kind) and facts.four_eyes_forbidden:
        return "four_eyes"
    if facts.status != "pending":
        return "stale"
    if facts.lapsed:
        return "expired"
    if facts.kind in BOUND_TO_WHAT_WAS_SHOWN and not facts.card_is_current:
        return "changed"  # it counts for the arguments its card or form showed, or not at all
    return "admitted"


REFUSAL_DETAIL: dict[Admission, str] = {
    "not_approver": "not an approver",
    "four_eyes": "four-eyes",
    "changed": "approved an earlier proposal",
}
"""The audit trail's detail for the refusals it records."""


# -- quorum --------------------------------------------------------------------------------


def counts_towards_quorum(quorum: int, kind: DecisionKind) -> bool:
    """With a quorum, an approval (or an edit, its editor's approval) is counted first."""
    return quorum > 1 and kind in ("approve", "edit")


def quorum_reached(approvals: Collection[str], quorum: int) -> bool:
    return len(approvals) >= quorum


def approval_progress(approvals: Collection[str], quorum: int) -> str:
    return f"{len(approvals)} of {quorum}"


# -- expiry --------------------------------------------------------------------------------


def remind_after(ttl_seconds: float | None, remind_before_seconds: float | None) -> float | None:
    """Seconds after registration at which a reminder is due (None: no reminder)."""
    if ttl_seconds is None or remind_before_seconds is None:
        return None
    return ttl_seconds - remind_before_seconds


def is_lapsed(status: str, expires_at: datetime | None, now: datetime) -> bool:
    """Pending with its time run out (the database decides for real; this states the rule)."""
    return status == "pending" and expires_at is not None and expires_at <= now


def expiry_words(ttl_seconds: float) -> str:
    """What the agent is told when nobody decided in time."""
    hours = ttl_seconds / 3600
    span = f"{hours:g} hours" if hours >= 1 else f"{ttl_seconds / 60:g} minutes"
    return (
        f"No one approved this call within {span}, so it was not run. Do not try it again "
        "unless the user asks."
    )


def expired_text(at: datetime) -> str:
    """Tell a clicker their decision came too late, in plain words (also a modal error)."""
    return (
        f"This review expired at {at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, so nothing was "
        "run. Ask the agent again if it is still needed."
    )
