"""A review's statuses and the transitions allowed between them: the one table.

::

    (new) --register--> pending --claim / claim_expiry--> deciding --finish--> decided
                          ^  |                               |  |
                          |  +--approve / propose_edit /     |  +--beat / take_over (a lapsed
                          |     remind / escalate /          |     claim becomes the expiry)
                          |     add_copy (stays)             |
                          +-----------release----------------+
                          pending --finish--> decided  (the agent already had a decision)

*Released* and *expired* are transitions, not statuses: a released claim is pending again; an
expired review is claimed by the clock (``claim_expiry``, or ``take_over`` of a lapsed claim)
and then finished like any other decision. The store names its status-changing statements by
transition and checks each against this table when it is imported, and a unit test checks
that no statement in ``bot/store.py`` changes a status outside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Status = Literal["pending", "deciding", "decided"]
STATUSES: tuple[Status, ...] = ("pending", "deciding", "decided")

TransitionName = Literal[
    "register",
    "claim",
    "claim_expiry",
    "approve",
    "propose_edit",
    "remind",
    "escalate",
    "add_copy",
    "release",
    "beat",
    "take_over",
    "mark_repaint",
    "finish",
]


@dataclass(frozen=True)
class Transition:
    name: TransitionName
    sources: frozenset[Status | None]
    """Statuses it starts from (None: the review does not exist yet)."""
    target: Status | None
    """The status it ends in (None: it changes no status, only other columns)."""
    why: str


def _t(
    name: TransitionName, sources: tuple[Status | None, ...], target: Status | None, why: str
) -> Transition:
    return Transition(name, frozenset(sources), target, why)


_ANY: tuple[Status, ...] = STATUSES
TRANSITIONS: dict[TransitionName, Transition] = {
    t.name: t
    for t in (
        _t("register", (None,), "pending", "the agent asked; stored before it is shown"),
        _t("claim", ("pending",), "deciding", "a person's decision, if the review is live"),
        _t("claim_expiry", ("pending",), "deciding", "the clock's, once the time ran out"),
        _t("approve", ("pending",), None, "one approval towards a quorum, if live"),
        _t("propose_edit", ("pending",), None, "an edit awaiting its quorum is the proposal"),
        _t("remind", ("pending",), None, "a reminder is claimed, so one replica posts it"),
        _t("escalate", ("pending",), None, "an escalation is claimed, so one replica pings"),
        _t("add_copy", _ANY, None, "another message shows the review"),
        _t("mark_repaint", _ANY, None, "the Slack messages do (not) show the row yet"),
        _t("release", ("deciding",), "pending", "a claim not applied: the buttons come back"),
        _t("beat", ("deciding",), None, "its applier is alive"),
        _t("take_over", ("deciding",), None, "applier silent; a lapsed claim becomes expiry"),
        _t("finish", ("pending", "deciding"), "decided", "the agent has it; event written"),
    )
}
"""Every change of a review row, by name."""


class IllegalTransition(ValueError):
    """A status change the table does not allow."""


def allowed(name: TransitionName, source: Status | None) -> bool:
    return source in TRANSITIONS[name].sources


_SET_STATUS = re.compile(r"SET\s+status\s*=\s*'(\w+)'", re.IGNORECASE)
_WHERE_STATUS = re.compile(r"status\s*(=|<>)\s*'(\w+)'", re.IGNORECASE)


def statuses_changed(sql: str) -> tuple[str | None, set[str]]:
    """The status an UPDATE sets, and the statuses its WHERE lets it start from (read from the
    statement's text: ``status = 'x'`` or ``status <> 'x'``; none: any status)."""
    set_match = _SET_STATUS.search(sql)
    target = set_match.group(1) if set_match else None
    where = sql[set_match.end() :] if set_match else sql
    sources: set[str] = set()
    for op, word in _WHERE_STATUS.findall(where):
        sources |= {word} if op == "=" else set(STATUSES) - {word}
    return target, sources or set(STATUSES)


def check_sql(name: TransitionName, sql: str) -> str:
    """``sql`` if the status change it writes is the transition ``name`` of the table; raise
    :class:`IllegalTransition` otherwise (at import time, so it cannot ship by accident)."""
    transition = TRANSITIONS[name]
    target, sources = statuses_changed(sql)
    if name == "register":
        ok = target is None and "INSERT INTO slack_reviews" in sql
    else:
        ok = target == transition.target and sources <= transition.sources
    if not ok:
        raise IllegalTransition(f"{name}: statement does not match the table ({target}, {sources})")
    return sql
