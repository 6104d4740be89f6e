"""The decision kinds (``graph.decisions``) translated at the Slack edges, and only here:
button action ids, and the outcome names of the audit trail."""

from __future__ import annotations

from typing import Literal

from bot.audit import Outcome
from bot.blocks import APPROVE, EDIT, FEEDBACK
from graph.decisions import DecisionKind, kind_of_action

ModalKind = Literal["edit", "feedback"]

KIND_OF_BUTTON: dict[str, DecisionKind] = {APPROVE: "approve", EDIT: "edit", FEEDBACK: "feedback"}
"""The button action ids (``bot.blocks``) and the kind of decision each starts."""
KIND_OF_MODAL: dict[ModalKind, DecisionKind] = {"edit": "edit", "feedback": "feedback"}

OUTCOME_OF: dict[DecisionKind, Outcome] = {
    "approve": "approved",
    "edit": "edited",
    "feedback": "feedback",
    "expire": "expired",
}
"""The audit trail's word for each decision kind."""


def outcome_of_action(action: str | None) -> Outcome:
    """The audit outcome of a row's stored ``action`` (none yet: an approval)."""
    return OUTCOME_OF[kind_of_action(action) or "approve"]
