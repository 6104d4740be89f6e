"""What a decision is bound to: the digest (``graph.digest``) of the exact arguments approved.

The bot computes it from the arguments the reviewer was shown (the proposal as it stands, with
an edit awaiting its quorum applied) or submitted (an Edit); it travels with the claim, each
quorum vote and the resume value, and the graph runs the call only if the arguments it is about
to run have it (``graph.review.check_bound``). Pure.
"""

from __future__ import annotations

import dataclasses

from bot.policy import ToolPolicy
from bot.review.shown import current_request
from bot.store import ReviewRow
from graph import Approve, Edit, ReviewDecision
from graph.digest import args_digest


def proposal_digest(review: ReviewRow) -> str:
    """The digest of the proposal as it stands (what an Approve click approves)."""
    return args_digest(current_request(review)["tool_call"]["args"])


def bound(decision: ReviewDecision, review: ReviewRow) -> ReviewDecision:
    """The decision with its digest: an approval of the proposal as it stands, an edit of
    its own arguments. A digest already set (a quorum's) is kept; feedback and expiry run
    nothing and are not bound."""
    if isinstance(decision, Approve) and decision.digest is None:
        return dataclasses.replace(decision, digest=proposal_digest(review))
    if isinstance(decision, Edit) and decision.digest is None:
        return dataclasses.replace(decision, digest=args_digest(decision.args))
    return decision


def audited_digest(digest: str | None, review: ReviewRow, policy: ToolPolicy) -> str | None:
    """The digest as the audit trail may show it: not for a call with a redacted argument,
    whose digest would let anyone holding the trail test guesses of the secret (a short value
    is guessed in seconds); the review row keeps it."""
    args = current_request(review)["tool_call"]["args"]
    edited = review.edited_args or {}
    if policy.redact & (set(args) | set(edited)):
        return None
    return digest
