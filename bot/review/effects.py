"""The effects of a review's transitions, in one place: apply a claimed decision, release it,
recover one a dead process left, expire, remind, and repaint every message showing it.

Written against :class:`bot.review.storage.ReviewStorage` and the agent seam. A decision is
stored with its claim before it is applied, so a crash, an outage or a failed Slack call never
loses it: the sweeper finishes what a dead process started and repaints messages Slack did not
accept. Every settle path writes its decision event with ``finish``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from bot import blocks, metrics, redaction
from bot.audit import Outcome
from bot.blocks import Progress, Verdict
from bot.failures import DB_DOWN, explain
from bot.mrkdwn import escape
from bot.review.audit_events import decision_event, review_event
from bot.review.deps import Deps, thread_of
from bot.review.rules import expiry_words
from bot.review.shown import shown_request, verdict_of
from bot.store import ReviewRow
from bot.turns import Turns
from graph import EXPIRY_ACTOR, Approve, Expire, Refused
from graph.decisions import stored_action

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Click:
    """One person's button press or modal submit on a review message."""

    user: str
    ref: str
    channel_id: str | None = None
    message_ts: str | None = None


class ReviewEffects:
    def __init__(self, deps: Deps, turns: Turns) -> None:
        self.deps = deps
        self.turns = turns  # to post what followed a decision

    # -- telling people ------------------------------------------------------------------

    async def tell(self, text: str, click: Click, review: ReviewRow | None) -> None:
        """An ephemeral note only the clicker sees, in the review's thread; the same note to
        the same person about the same review is said once a minute at most."""
        slack = self.deps.slack
        if not slack.first_time((click.user, click.ref, text)):
            return
        if review is None:
            try:
                review = await self.deps.storage.get(click.ref)
            except Exception:  # the database is down: still answer, outside the thread
                log.warning("cannot look up %s to tell %s: %s", click.ref, click.user, text)
        channel = click.channel_id or (review.channel_id if review else None)
        if channel is None:
            log.warning("no channel to tell %s: %s", click.user, text)
            return
        await slack.ephemeral(
            click.user, channel, text, thread_ts=review.thread_ts if review else None
        )

    async def notify(self, click: Click | None, review: ReviewRow, text: str) -> None:
        """Tell the clicker privately; with nobody clicking (the sweeper), tell the thread."""
        if click is not None:
            await self.tell(text, click, review)
        else:
            await self.deps.slack.say(thread_of(review), text)

    async def record(
        self,
        outcome: Outcome,
        review: ReviewRow,
        *,
        by: str | None,
        detail: str | None = None,
        digest: str | None = None,
    ) -> None:
        policy = self.deps.policy(review.tool_name)
        event = review_event(outcome, review, policy, by=by, detail=detail, digest=digest)
        await self.deps.append(event)

    # -- apply, release, recover ---------------------------------------------------------

    async def apply(
        self,
        claimed: ReviewRow,
        approvals: tuple[str, ...] = (),
        *,
        click: Click | None = None,
        started: float | None = None,
    ) -> None:
        """Show a claimed decision, resume the agent with it, and post what followed.

        If the decision cannot be applied (database down, model unreachable before the tool
        ran), the claim is released and the buttons come back, so nothing is lost.
        """
        policy = self.deps.policy(claimed.tool_name)
        self.deps.remember_secrets(claimed)  # before the tool runs and logs
        await self.show_decided(claimed, verdict_of(claimed, policy, approvals))
        thread = thread_of(claimed)
        decision = claimed.decision or Approve(claimed.decided_by or EXPIRY_ACTOR)
        if isinstance(decision, Expire) and not decision.text:
            # a stuck decision the sweeper turned into its expiry
            decision = Expire(expiry_words(policy.ttl_seconds))
        action = stored_action(decision.kind)  # the metrics label, as the dashboards know it
        try:
            with metrics.agent_run("resume"):
                outcome = await self.deps.agent.answer(
                    claimed.thread_id,
                    claimed.interrupt_id,
                    decision,
                    context=self.deps.context(thread, claimed.decided_by),
                )
        except Exception as error:
            metrics.decided(action, "failed")
            log.exception("applying %s on %s failed", action, claimed.ref)
            await self._after_failure(claimed, click, error)
            return
        if isinstance(outcome, Refused):
            metrics.decided(action, "refused")
            await self._refused(claimed, click, outcome)
            return
        metrics.decided(action, "applied", since=started)
        await self._finish(claimed, approvals)
        await self.turns.present(thread, outcome, requester=claimed.request.get("requested_by"))

    async def _finish(self, review: ReviewRow, approvals: tuple[str, ...]) -> None:
        policy = self.deps.policy(review.tool_name)
        await self.deps.storage.finish(review.ref, decision_event(review, approvals, policy))

    async def _refused(self, review: ReviewRow, click: Click | None, refused: Refused) -> None:
        if refused.reason == "not_pending":
            await self.recover_applied(review, refused)
            if click and refused.previous:
                previous = refused.previous
                await self.tell(
                    blocks.stale_text(previous.action, previous.decided_by, previous.decided_at),
                    click,
                    review,
                )
            return
        await self._release(review)
        words = redaction.mask(refused.message, self.deps.review_secrets(review))
        await self.notify(click, review, escape(words))

    async def _release(self, review: ReviewRow) -> None:
        """``release``: the claim is undone and the buttons come back."""
        await self.deps.storage.release(review.ref)
        approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
        await self.repaint_pending(dataclasses.replace(review, status="pending"), approvals)

    async def recover_applied(self, review: ReviewRow, refused: Refused) -> None:
        """The agent already has a decision for this review (this one, applied before a crash,
        or another): settle the row, repaint the message, and post what followed."""
        agent, storage = self.deps.agent, self.deps.storage
        previous = refused.previous
        mine = previous is not None and previous.decided_by == (review.decided_by or EXPIRY_ACTOR)
        thread = thread_of(review)
        requester = review.request.get("requested_by")
        if previous is not None and not mine:
            # Their run may have stopped before its tools ran (e.g. this row's claim turned
            # into the expiry meanwhile): finish it first, as below; a run at rest is left be.
            resumed = await agent.resume_interrupted(
                review.thread_id, context=self.deps.context(thread, previous.decided_by)
            )
            theirs = dataclasses.replace(
                review,
                action=previous.action,
                decided_by=previous.decided_by,
                decided_at=previous.decided_at,
                edited_args=None,
                args_digest=None,  # ours was not the decision applied
            )
            policy = self.deps.policy(review.tool_name)
            await storage.finish(
                review.ref,
                decision_event(theirs, (), policy, detail="applied before a restart"),
                action=previous.action,
                by=previous.decided_by,
                at=previous.decided_at,
            )
            await self.show_decided(
                review, Verdict(previous.action, previous.decided_by, previous.decided_at)
            )
            if resumed is not None:
                await self.turns.present(thread, resumed, recovering=True, requester=requester)
            return
        # Died after the agent took the decision in but before its tools ran: finish that run
        # first (the row stays 'deciding' if this fails, so the sweeper tries again).
        resumed = await agent.resume_interrupted(
            review.thread_id, context=self.deps.context(thread, review.decided_by)
        )
        approvals = tuple(await storage.approvals(review.ref, review.version))
        await self._finish(review, approvals)
        await self.show_decided(review, verdict_of(review, self.deps.policy(review.tool_name)))
        if resumed is not None:
            await self.turns.present(thread, resumed, recovering=True, requester=requester)
            return
        recap = await agent.recap(review.thread_id, review.request["tool_call"]["id"])
        await self.turns.present(thread, recap, recovering=True, requester=requester)

    async def _after_failure(
        self, review: ReviewRow, click: Click | None, error: Exception
    ) -> None:
        try:
            pending = await self.deps.agent.pending_reviews(review.thread_id)
            still_pending = any(p.interrupt_id == review.interrupt_id for p in pending)
        except Exception:
            log.warning("could not re-read %s after a failure", review.thread_id, exc_info=True)
            still_pending = True
        if not still_pending:  # the agent has the decision: settle it, with its event
            approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
            await self._finish(review, approvals)
            await self.deps.slack.say(
                thread_of(review), f"Your decision was applied, but then: {explain(error)}"
            )
            return
        try:
            await self.deps.storage.release(review.ref)
        except Exception:  # the database is gone: the sweeper retries the claim later
            log.warning("could not release %s; the sweeper will retry it", review.ref)
            await self.notify(
                click,
                review,
                DB_DOWN + " Your decision is kept and will be applied when it is back.",
            )
            return
        approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
        await self.repaint_pending(dataclasses.replace(review, status="pending"), approvals)
        await self.notify(click, review, explain(error))

    # -- the clock -----------------------------------------------------------------------

    async def expire(self, review: ReviewRow) -> None:
        """``claim_expiry``, then apply: nobody decided in time, so the agent is told the call
        did not run (fail closed)."""
        policy = self.deps.policy(review.tool_name)
        expiry = Expire(expiry_words(policy.ttl_seconds))
        claimed = await self.deps.storage.claim(review.ref, expiry)
        if isinstance(claimed, ReviewRow):  # None: decided meanwhile, or not yet expired
            async with self.deps.storage.deciding(claimed.ref):  # the agent may take a while
                await self.apply(claimed)

    async def expire_quietly(self, review: ReviewRow) -> None:
        try:
            await self.expire(review)
        except Exception:  # the sweeper expires it later
            log.exception("expiring %s after a late click failed", review.ref)

    async def remind(self, review: ReviewRow) -> None:
        allowed = self.deps.approvers.allowed_for(review.tool_name) or frozenset()
        who = " ".join(
            f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>" for i in sorted(allowed)
        )
        when = ""
        if review.expires_at:
            when = f" It expires {blocks.when(review.expires_at)}."
        await self.deps.slack.say(
            thread_of(review),
            f":alarm_clock: {who + ' ' if who else ''}`{review.tool_name}` is still waiting "
            f"for a decision.{when}",
        )

    # -- repainting ----------------------------------------------------------------------

    async def sync(self, review: ReviewRow) -> None:
        """Repaint a message whose update Slack did not accept earlier."""
        policy = self.deps.policy(review.tool_name)
        approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
        if review.status == "pending":
            await self.repaint_pending(review, approvals)
        else:
            await self.show_decided(review, verdict_of(review, policy, approvals))

    async def repaint_pending(self, review: ReviewRow, approvals: tuple[str, ...]) -> None:
        policy = self.deps.policy(review.tool_name)
        changes = None
        if review.proposed_edit is not None:
            changes = blocks.changed_args(
                policy.redacted(review.request["tool_call"]["args"]),
                policy.redacted(review.proposed_edit),
            )
        progress = Progress(approvals, policy.quorum, review.proposed_by, changes)
        await self._paint(
            review,
            blocks.review_blocks(shown_request(review, policy), review.ref, progress),
            blocks.review_fallback_text(review.request),
        )

    async def show_decided(self, review: ReviewRow, verdict: Verdict) -> None:
        shown = shown_request(
            dataclasses.replace(review, proposed_edit=None), self.deps.policy(review.tool_name)
        )
        await self._paint(
            review,
            blocks.decided_blocks(shown, verdict),
            blocks.decided_text(review.request, verdict),
        )

    async def _paint(self, review: ReviewRow, body: list[dict[str, Any]], text: str) -> None:
        """Every message showing the review; if Slack still refuses one, the sweeper repaints
        them all later (``mark_repaint``). The flag is cleared only when the row says it is
        set: almost every update finds it clear, and a flag set since the row was read only
        costs one more repaint."""
        painted = await self.deps.slack.update_all(
            review.channel_id, review.messages, body, text, what=review.ref
        )
        if not painted:
            await self.deps.storage.mark_repaint(review.ref)
        elif review.ref and review.needs_sync:
            await self.deps.storage.mark_repaint(review.ref, False)
