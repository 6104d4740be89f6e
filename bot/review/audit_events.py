"""What the audit trail says about a review: every entry is built by :func:`audit_event`, from
the transition (or refusal) it records, with the arguments redacted per policy.

Outcome names are the audit trail's words (``bot.audit.Outcome``); the decision kinds are
translated to them in ``bot.review.vocabulary``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.audit import AuditEvent, Outcome
from bot.policy import ToolPolicy
from bot.review.binding import audited_digest
from bot.review.vocabulary import outcome_of_action
from bot.store import ReviewRow
from bot.threads import SlackThread
from graph import ReviewRequest, ToolResult
from graph.decisions import kind_of_action


def audit_event(
    outcome: Outcome,
    thread_id: str,
    interrupt_id: str,
    request: ReviewRequest,
    policy: ToolPolicy,
    *,
    by: str | None = None,
    detail: str | None = None,
    edited: Mapping[str, Any] | None = None,
    channel_id: str | None = None,
    message_ts: str | None = None,
    digest: str | None = None,
) -> AuditEvent:
    """The one builder of audit entries: arguments redacted per policy; what ran is stated
    only when it is known (an approval ran what was proposed, an edit what it carried);
    ``digest``: what the decision or vote was bound to (``bot.review.binding``)."""
    proposed = policy.redacted(request["tool_call"]["args"])
    executed = None
    if outcome in ("approved", "auto_approved"):
        executed = proposed
    elif outcome == "edited" and edited is not None:  # unknown edits are not guessed
        executed = policy.redacted(edited)
    return AuditEvent(
        outcome=outcome,
        thread_id=thread_id,
        interrupt_id=interrupt_id,
        tool_call_id=request["tool_call"]["id"],
        tool_name=request["tool_call"]["name"],
        proposed_args=proposed,
        edited_args=policy.redacted(edited) if edited is not None else None,
        executed_args=executed,
        requested_by=request.get("requested_by"),
        decided_by=by,
        channel_id=channel_id,
        message_ts=message_ts,
        detail=detail,
        args_digest=digest,
    )


def requested_event(
    thread: SlackThread,
    interrupt_id: str,
    request: ReviewRequest,
    policy: ToolPolicy,
    detail: str | None = None,
) -> AuditEvent:
    """``register``: the review exists (written with it, before anyone can click);
    ``detail``: the policy rule it is reviewed under, when the tool has rules."""
    return audit_event(
        "requested",
        thread.thread_id,
        interrupt_id,
        request,
        policy,
        channel_id=thread.channel_id,
        detail=detail,
    )


def review_event(
    outcome: Outcome,
    review: ReviewRow,
    policy: ToolPolicy,
    *,
    by: str | None,
    detail: str | None = None,
    digest: str | None = None,
) -> AuditEvent:
    """An entry about an existing review: a refusal, an approval towards a quorum (``digest``:
    the vote's), a decision (the digest its claim was bound to). No digest is shown for a call
    with a redacted argument (``bot.review.binding.audited_digest``)."""
    return audit_event(
        outcome,
        review.thread_id,
        review.interrupt_id,
        review.request,
        policy,
        by=by,
        detail=detail,
        edited=review.edited_args if kind_of_action(review.action) == "edit" else None,
        channel_id=review.card_channel_id,  # the message's channel (a routed card's own)
        message_ts=review.message_ts,
        digest=audited_digest(digest or review.args_digest, review, policy),
    )


def decision_event(
    review: ReviewRow,
    approvals: tuple[str, ...],
    policy: ToolPolicy,
    *,
    detail: str | None = None,
) -> AuditEvent:
    """``finish``: what was decided, by whom (every approver of a quorum in ``detail``). Every
    call of ``BotStore.finish`` passes one."""
    return review_event(
        outcome_of_action(review.action),
        review,
        policy,
        by=review.decided_by,
        detail=", ".join(approvals) or detail,
    )


def auto_event(
    thread: SlackThread, result: ToolResult, requester: str | None, policy: ToolPolicy
) -> AuditEvent:
    """A call that ran without review, with the rule that let it (no review, no transition)."""
    request = ReviewRequest(
        question="",
        tool_call={"name": result.tool_name, "args": result.args, "id": result.tool_call_id},
        tool={"name": result.tool_name, "description": "", "args_schema": {}},
        requested_by=requester,
    )
    return audit_event(
        "auto_approved",
        thread.thread_id,
        "",
        request,
        policy,
        detail=result.auto_rule,
        channel_id=thread.channel_id,
    )
