"""How a review reads: the proposal as it stands, as people may see it, and as decided. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot import blocks
from bot.blocks import Verdict
from bot.policy import ToolPolicy
from bot.store import ReviewRow
from graph import Approve, Edit, Expire, Feedback, ReviewDecision, ReviewRequest
from graph.decisions import stored_action


def with_args(request: ReviewRequest, args: Mapping[str, Any]) -> ReviewRequest:
    """The request with other arguments, in the order the tool declares them."""
    call = request["tool_call"]
    order = [*request["tool"]["args_schema"].get("properties", {}), *call["args"]]
    ordered = {name: args[name] for name in dict.fromkeys(order) if name in args}
    ordered.update(args)
    shown: ReviewRequest = {
        **request,
        "tool_call": {"name": call["name"], "id": call["id"], "args": ordered},
    }
    if "action_request" in request:  # Agent Inbox's copy of the call says the same
        shown["action_request"] = {"action": call["name"], "args": ordered}
    return shown


def current_request(review: ReviewRow) -> ReviewRequest:
    """The proposal as it stands: with an edit that awaits its quorum applied."""
    if review.proposed_edit is None:
        return review.request
    return with_args(review.request, review.proposed_edit)


def shown_request(review: ReviewRow, policy: ToolPolicy) -> ReviewRequest:
    """The proposal as people may see it: redacted arguments masked."""
    request = current_request(review)
    return with_args(request, policy.redacted(request["tool_call"]["args"]))


def verdict_of(review: ReviewRow, policy: ToolPolicy, approvers: tuple[str, ...] = ()) -> Verdict:
    """How a decided review reads, rebuilt from its row (also after a restart)."""
    at = review.decided_at or datetime.now(UTC)
    decision = review.decision
    if isinstance(decision, Edit) and isinstance(review.edited_args, Mapping):
        before = policy.redacted(review.request["tool_call"]["args"])
        changes = blocks.changed_args(before, policy.redacted(review.edited_args))
        return Verdict(shown_word(decision), decision.by, at, changes=changes, approvers=approvers)
    if isinstance(decision, Feedback):
        return Verdict(shown_word(decision), decision.by, at, feedback=decision.text)
    if isinstance(decision, Expire):
        return Verdict(shown_word(decision), None, at)
    return Verdict(shown_word(Approve()), review.decided_by, at, approvers=approvers)


def shown_word(decision: ReviewDecision) -> str:
    """The word ``bot.blocks`` paints a decision by (the stored word: ``continue``, ...)."""
    return stored_action(decision.kind)
