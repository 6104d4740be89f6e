"""One vocabulary for a person's (or the clock's) answer to a review, shared by bot and graph.

Four small frozen records, as LangChain's human-in-the-loop middleware types its responses:
:class:`Approve`, :class:`Edit` (new arguments), :class:`Feedback` (words instead of running)
and :class:`Expire` (nobody answered in time). Everything inside the bot and the graph speaks
these; other words are translated at the edges only:

- the seed's resume words ``continue``/``update``/``feedback`` at the graph's resume boundary
  (:func:`to_wire`, :func:`from_wire`), plus an optional ``digest`` of the approved
  arguments (a resume value without one, as the seed and hosted clients send, stays valid);
- the ``action`` column of the bot's review rows (:func:`stored_action`, :func:`from_stored`),
  which keeps the seed's words plus ``expired`` so existing databases need no conversion;
- button action ids and audit outcome names, on the Slack side (``bot.review.vocabulary``).

An expiry reaches the model as a feedback-like message (the model reads the same words it
always read), but inside the bot it is an :class:`Expire`, never a :class:`Feedback`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from graph.types import Decision as WireDecision
from graph.types import ReviewAction

DecisionKind = Literal["approve", "edit", "feedback", "expire"]
KINDS: tuple[DecisionKind, ...] = ("approve", "edit", "feedback", "expire")

EXPIRY_ACTOR = "expiry"
"""Who the agent is told decided an expired review (the clock, not a person)."""

StoredAction = Literal["continue", "update", "feedback", "expired"]


@dataclass(frozen=True)
class Approve:
    """Run the call as proposed. ``digest`` (``graph.digest.args_digest``) binds the approval
    to the exact arguments approved: the graph runs the call only if its arguments have it.
    None (a hosted or foreign client, the seed's wire): not bound."""

    by: str | None = None
    digest: str | None = None
    kind: DecisionKind = field(default="approve", init=False)


@dataclass(frozen=True)
class Edit:
    """Run the call with these arguments instead (``digest``: theirs, as for :class:`Approve`)."""

    args: Mapping[str, Any]
    by: str | None = None
    digest: str | None = None
    kind: DecisionKind = field(default="edit", init=False)


@dataclass(frozen=True)
class Feedback:
    """Do not run the call; tell the agent these words."""

    text: str
    by: str | None = None
    kind: DecisionKind = field(default="feedback", init=False)


@dataclass(frozen=True)
class Expire:
    """Nobody decided in time: the call does not run, and the agent is told ``text``."""

    text: str
    kind: DecisionKind = field(default="expire", init=False)

    @property
    def by(self) -> str | None:
        return None


ReviewDecision = Approve | Edit | Feedback | Expire

_WIRE: dict[DecisionKind, ReviewAction] = {
    "approve": "continue",
    "edit": "update",
    "feedback": "feedback",
    "expire": "feedback",
}
_STORED: dict[DecisionKind, StoredAction] = {
    "approve": "continue",
    "edit": "update",
    "feedback": "feedback",
    "expire": "expired",
}
_KIND_OF_STORED: dict[str, DecisionKind] = {word: kind for kind, word in _STORED.items()}


def to_wire(decision: ReviewDecision) -> WireDecision:
    """The seed's resume value for a decision (the graph's resume boundary)."""
    wire = WireDecision(action=_WIRE[decision.kind])
    if isinstance(decision, Edit):
        wire["data"] = dict(decision.args)
    elif isinstance(decision, Feedback | Expire):
        wire["data"] = decision.text
    by = EXPIRY_ACTOR if isinstance(decision, Expire) else decision.by
    if by:
        wire["by"] = by
    if isinstance(decision, Approve | Edit) and decision.digest:
        wire["digest"] = decision.digest
    return wire


def from_wire(wire: Mapping[str, Any]) -> ReviewDecision | None:
    """A typed decision from the seed's resume value; None if it is not one (no validation of
    the arguments themselves: that is ``graph.review.parse_decision``'s job)."""
    action, data = wire.get("action"), wire.get("data")
    by = wire.get("by") if isinstance(wire.get("by"), str) else None
    digest = wire.get("digest") if isinstance(wire.get("digest"), str) else None
    if action == "continue":
        return Approve(by, digest)
    if action == "update" and isinstance(data, Mapping):
        return Edit(data, by, digest)
    if action == "feedback" and isinstance(data, str):
        return Expire(data) if by == EXPIRY_ACTOR else Feedback(data, by)
    return None


def kind_of_action(action: str | None) -> DecisionKind | None:
    """The kind a stored or seed word names (``continue`` -> approve, ``expired`` -> expire)."""
    return None if action is None else _KIND_OF_STORED.get(action)


def stored_action(kind: DecisionKind) -> StoredAction:
    """The word the bot's review rows keep in their ``action`` column for a kind."""
    return _STORED[kind]


def from_stored(
    action: str | None,
    by: str | None,
    edited: Any,
    feedback: str | None,
    digest: str | None = None,
) -> ReviewDecision | None:
    """The decision a review row holds, from its columns; None for a row with none."""
    kind = kind_of_action(action)
    if kind == "approve":
        return Approve(by, digest)
    if kind == "edit":
        return Edit(edited if isinstance(edited, Mapping) else {}, by, digest)
    if kind == "feedback":
        return Feedback(feedback or "", by)
    if kind == "expire":
        return Expire(feedback or "")
    return None
