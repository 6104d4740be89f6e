"""What a click does: a button press or modal submit, from admission to the claim.

The order is fixed by :func:`bot.review.rules.admission`; refusals are recorded in the audit
trail and said to the clicker only (once per repeat). With a quorum, approvals are counted
first (:meth:`Clicks._count_approval`); the decision that reaches its quorum is claimed like
any other, then applied by :class:`bot.review.effects.ReviewEffects`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot import blocks, metrics, modals, mrkdwn, redaction
from bot.failures import explain
from bot.review import rules
from bot.review.binding import bound, proposal_digest
from bot.review.deps import Deps
from bot.review.effects import Click, ReviewEffects
from bot.review.rules import ClickFacts, expired_text
from bot.review.shown import current_request, shown_request
from bot.review.vocabulary import ModalKind
from bot.store import Expired, ReviewRow
from graph import Approve, DecisionKind, Edit, Feedback, ReviewDecision
from graph.decisions import stored_action

if TYPE_CHECKING:
    from bot.grants import GrantTerms
    from bot.review.standing import StandingApprovals

log = logging.getLogger(__name__)

UNKNOWN = "I don't recognise this review. It may come from an old version of me."
ELSEWHERE = "This button doesn't belong to this message, so I ignored it."
FOUR_EYES = (
    "You asked for this call, so someone else has to approve it (four-eyes rule). "
    "You can still send Feedback."
)
CHANGED = "Someone changed this review meanwhile; please look again."


def count(kind: DecisionKind, result: str, *, since: float | None = None) -> None:
    """Count a decision under the label the dashboards know (the stored word)."""
    metrics.decided(stored_action(kind), result, since=since)


def stale_words(review: ReviewRow | None) -> str:
    if review is None:
        return blocks.stale_text(None, None, None)
    return blocks.stale_text(review.action, review.decided_by, review.decided_at)


class Clicks:
    def __init__(self, deps: Deps, effects: ReviewEffects) -> None:
        self.deps = deps
        self.effects = effects
        self._expiring: set[asyncio.Task[None]] = set()
        self.standing: StandingApprovals | None = None  # set by the flow (``bot.flow``)

    async def admissible(
        self, click: Click, kind: DecisionKind, edit: Mapping[str, Any] | None = None
    ) -> ReviewRow | str:
        """The review a click may act on, or the sentence to tell the clicker instead.

        ``edit``: the arguments an Edit submits; the clicker must then be allowed under the
        policy of the edited call as well as the review's own (``Deps.policy_of``)."""
        review = await self.deps.storage.get(click.ref)
        if review is None:
            log.warning("click with unknown review ref from %s", click.user)
            return UNKNOWN
        return await self.admit(review, click, kind, edit)

    async def admit(
        self,
        review: ReviewRow,
        click: Click,
        kind: DecisionKind,
        edit: Mapping[str, Any] | None = None,
    ) -> ReviewRow | str:
        """:meth:`admissible` for a review already read."""
        approvers = self.deps.approvers
        call = self.deps.policy_of(review, edit)
        home = review.card_channel_id  # where every copy of the card is (routed or not)
        elsewhere = bool(click.channel_id and click.channel_id != home)
        facts = ClickFacts(
            kind=kind,
            clicked_in=click.channel_id,
            review_channel=home,
            # group membership is looked up only for a click in the review's own channel
            is_approver=elsewhere or await approvers.may_decide_review(call, review, click.user),
            four_eyes_forbidden=approvers.own_call_forbidden(
                call,
                click.user,
                review.request.get("requested_by"),
                review.request.get("requesters"),
            ),
            status=review.status,
            lapsed=review.lapsed,
            card_is_current=click.shown_version in (None, review.version),
        )
        verdict = rules.admission(facts)
        if verdict == "admitted":
            return review
        if verdict == "wrong_channel":
            # The ref is the key, so any copy of the review may be clicked; but only where the
            # review was posted: a ref carried into another conversation finds nothing.
            log.warning("click on review %s from another channel (%s)", click.ref, click.user)
            return ELSEWHERE
        if verdict in rules.REFUSAL_DETAIL:
            detail = rules.REFUSAL_DETAIL[verdict]
            await self.effects.record("refused", review, by=click.user, detail=detail)
        if verdict == "not_approver":
            who = await approvers.describe(call, review.escalated_to)
            return (
                f"Only {who} may decide `{review.tool_name}` calls, so I did nothing. "
                "Ask one of them to take a look."
            )
        if verdict == "four_eyes":
            return FOUR_EYES
        if verdict == "stale":
            return stale_words(review)
        if verdict == "changed":  # their card is behind: show them the current one
            approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
            await self.effects.repaint_pending(review, approvals)
            return CHANGED
        return await self._too_late(Expired(review), click, kind, background=True)

    async def open_modal(self, click: Click, trigger_id: str, modal: ModalKind) -> None:
        """Open the Edit or Feedback modal at once: the click's trigger lives only 3 s."""
        try:
            review = await self.admissible(click, modal)
            if isinstance(review, str):
                await self.effects.tell(review, click, None)
                return
            policy = self.deps.policy_of(review).policy
            view = (
                modals.edit_modal(
                    current_request(review), review.ref, policy.redact, version=review.version
                )
                if modal == "edit"
                else modals.feedback_modal(shown_request(review, policy), review.ref)
            )
            await self.deps.slack.open_view(trigger_id, view)
        except Exception as error:
            log.exception("opening the %s modal for %s failed", modal, click.ref)
            await self.effects.tell(explain(error), click, None)

    async def plain(self, text: str) -> str:
        """A message as plain words for a modal error, people named as ``@name``."""
        names = await self.deps.approvers.user_names(mrkdwn.mentioned_users(text))
        return modals.plain(text, names)

    async def check_submission(
        self, click: Click, modal: ModalKind, values: Mapping[str, Any], first_block: str
    ) -> tuple[ReviewRow, ReviewDecision] | dict[str, str]:
        """Validate a submitted modal within Slack's 3 s: the review and the decision, or
        errors keyed by block id to show under the offending inputs."""
        try:
            review = await self.admissible(click, modal)
            if isinstance(review, str):
                return {first_block: await self.plain(review)}
            if modal == "feedback":
                text, errors = modals.parse_feedback(values)
                return errors if errors or text is None else (review, Feedback(text, click.user))
            policy = self.deps.policy_of(review).policy
            request = current_request(review)
            parsed = modals.parse_edit(request, values, policy.redact)
            if parsed.errors:
                return parsed.errors
            under = await self.admit(review, click, modal, parsed.args)  # the edited call's terms
            if isinstance(under, str):
                return {first_block: await self.plain(under)}
            edit = Edit(parsed.args, click.user)
            refused = await self.deps.agent.check(review.thread_id, review.interrupt_id, edit)
        except Exception as error:
            log.exception("checking a %s submission for %s failed", modal, click.ref)
            return {first_block: await self.plain(explain(error))}
        if refused is not None:
            block = modals.error_block_for(refused.argument, request, policy.redact)
            words = redaction.mask(refused.message, self.deps.review_secrets(review))
            return {block: await self.plain(words)}
        return review, edit

    async def decide(
        self,
        click: Click,
        decision: ReviewDecision,
        review: ReviewRow | None = None,
        *,
        offer: GrantTerms | None = None,
    ) -> None:
        """Apply a person's decision; an outage before anything happened is said, not raised.

        ``offer``: an approval that also offers a standing approval on these terms (created
        with the claim, under the same admission and quorum: ``bot.review.standing``)."""
        try:
            await self._decide(click, decision, review, offer)
        except Exception as error:
            log.exception("deciding %s on %s failed", decision.kind, click.ref)
            await self.effects.tell(explain(error), click, review)

    async def _decide(
        self,
        click: Click,
        decision: ReviewDecision,
        review: ReviewRow | None,
        offer: GrantTerms | None = None,
    ) -> None:
        storage = self.deps.storage
        started = time.perf_counter()
        edited = decision.args if isinstance(decision, Edit) else None
        found = review or await self.admissible(click, decision.kind, edited)
        if isinstance(found, str):
            count(decision.kind, "rejected")
            await self.effects.tell(found, click, None)
            return
        if click.message_ts and click.message_ts not in found.messages:
            # A copy we never stored (its poster died first): the click names it, so the
            # decision is painted there too.
            await storage.add_copy(found.ref, click.message_ts)
            found = dataclasses.replace(
                found,
                message_ts=found.message_ts or click.message_ts,
                message_copies=(*found.messages, click.message_ts),
            )
        policy = self.deps.policy_of(found, edited).policy
        approvals: tuple[str, ...] = ()
        standing = self.standing if isinstance(decision, Approve) else None
        if rules.counts_towards_quorum(policy.quorum, decision.kind):
            if standing is not None and offer is not None:  # before the approval it goes with
                await standing.offer(found, click.user, offer)
            reached = await self._count_approval(found, click, decision, policy.quorum)
            if reached is None:
                return
            found, decision, approvals = reached
        # bound to the arguments approved: the graph runs the call only with those
        claimed = await storage.claim(found.ref, bound(decision, found))
        if isinstance(claimed, Expired):
            text = await self._too_late(claimed, click, decision.kind)
            await self.effects.tell(text, click, found)
            return
        if claimed is None:
            count(decision.kind, "stale")
            await self.effects.tell(stale_words(await storage.get(found.ref)), click, found)
            return
        async with storage.deciding(claimed.ref):
            if standing is not None:
                await standing.create(claimed, approvals, click, offer)
            await self.effects.apply(claimed, approvals, click=click, started=started)

    async def _count_approval(
        self, review: ReviewRow, click: Click, decision: ReviewDecision, quorum: int
    ) -> tuple[ReviewRow, ReviewDecision, tuple[str, ...]] | None:
        """Quorum: record this approval; return the decision to apply once enough agree.

        An edit becomes the new proposal and counts as its editor's approval; approvals of
        the earlier arguments do not carry over to it. Each vote is bound to the digest of the
        proposal it approved, and only votes of the current one are counted.
        """
        storage, tell = self.deps.storage, self.effects.tell
        current = review
        if isinstance(decision, Edit):
            edited = await storage.propose_edit(
                review.ref, review.version, dict(decision.args), click.user
            )
            if isinstance(edited, Expired):
                await tell(await self._too_late(edited, click, decision.kind), click, review)
                return None
            if edited is None:
                await tell(CHANGED, click, review)
                return None
            current = edited
        digest = proposal_digest(current)
        approved = await storage.approve(current.ref, current.version, click.user, digest)
        if isinstance(approved, Expired):
            await tell(await self._too_late(approved, click, decision.kind), click, current)
            return None
        if approved is None:  # decided meanwhile, or edited since this card was painted
            now = await storage.get(current.ref)
            edited_since = now is not None and now.status == "pending"
            await tell(CHANGED if edited_since else stale_words(now), click, current)
            return None
        approvals = tuple(approved)
        if not rules.quorum_reached(approvals, quorum):
            progress = rules.approval_progress(approvals, quorum)
            await self.effects.record(
                "approval_recorded", current, by=click.user, detail=progress, digest=digest
            )
            count(decision.kind, "approval_recorded")
            await self.effects.repaint_pending(current, approvals)
            await tell(f"Your approval is recorded: {progress}.", click, current)
            return None
        if current.proposed_edit is not None:
            return current, Edit(current.proposed_edit, click.user, digest), approvals
        return current, Approve(click.user, digest), approvals

    async def _too_late(
        self, expired: Expired, click: Click, kind: DecisionKind, *, background: bool = False
    ) -> str:
        """A decision that reached an expired review: recorded as refused, nothing stored, and
        the review expired now (not at the next sweep), so the agent is told and the message
        says *Expired*. The sentence to tell the clicker is returned.

        ``background``: expire after answering (a modal submit must be answered within 3 s).
        """
        if not background:  # admissible's caller counts its own refusals
            count(kind, "expired")
        await self.effects.record("refused", expired.review, by=click.user, detail="expired")
        if background:
            task = asyncio.create_task(self.effects.expire_quietly(expired.review))
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)
        else:
            await self.effects.expire_quietly(expired.review)
        return expired_text(expired.at)
