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
from typing import TYPE_CHECKING, Any

from bot import blocks, metrics, redaction
from bot.audit import Outcome
from bot.blocks import Progress, Verdict
from bot.failures import DB_DOWN, explain
from bot.mrkdwn import escape
from bot.policy_blocks import policy_line
from bot.review.audit_events import decision_event, review_event
from bot.review.deps import Deps, thread_of
from bot.review.rules import expiry_words
from bot.review.shown import shown_request, verdict_of, with_args
from bot.routing import card_thread_of, mentions, with_conversation
from bot.store import ReviewRow
from bot.streaming import ResultListener
from bot.turns import Turns
from graph import (
    EXPIRY_ACTOR,
    Approve,
    Expire,
    PendingReview,
    Refused,
    ReviewRequest,
    RunOutcome,
    ToolResult,
)
from graph.decisions import Feedback, ReviewDecision, stored_action

if TYPE_CHECKING:
    from bot.task_cards import TaskCards

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Click:
    """One person's button press or modal submit on a review message."""

    user: str
    ref: str
    channel_id: str | None = None
    message_ts: str | None = None
    shown_version: int | None = None
    """The proposal version the clicked card or submitted Edit form showed
    (``bot.blocks.button_value``); None where nothing is bound to it (a Feedback form)."""


def task_phase(decision: ReviewDecision) -> str:
    """The task's phase once ``decision`` is taken (``bot.task_blocks.PHASES``)."""
    if isinstance(decision, Feedback):
        return "declined"
    if isinstance(decision, Expire):
        return "expired"
    return "approved"


def requests_of(pending: list[PendingReview]) -> list[ReviewRequest]:
    return [review.request for review in pending]


def ran_phase(outcome: RunOutcome, request: ReviewRequest) -> str:
    """``done`` or ``failed``: how the reviewed call itself ended in ``outcome``."""
    return results_phase(outcome.tool_results, request["tool_call"].get("id"))


def results_phase(results: list[ToolResult], call_id: str | None) -> str:
    """``done`` or ``failed``: how the call ``call_id`` ended among these results."""
    mine = [r for r in results if r.tool_call_id == call_id]
    return "failed" if any(r.status == "error" for r in mine) else "done"


def moving_task(
    claimed: ReviewRow, show: ResultListener | None, tasks: TaskCards
) -> ResultListener:
    """A streamed run's result listener that also moves the reviewed call's task to done or
    failed the moment its result comes: the model may go on for a while after the tool (the
    unstreamed path moves it when the run ends, which is then the same moment)."""
    call_id = claimed.request["tool_call"].get("id")

    async def shown(result: ToolResult) -> bool:
        early = await show(result) if show is not None else False
        if result.tool_call_id == call_id:
            await tasks.move(claimed.ref, results_phase([result], call_id))
        return early

    return shown


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
        channel = click.channel_id or (review.card_channel_id if review else None)
        if channel is None:
            log.warning("no channel to tell %s: %s", click.user, text)
            return
        # a routed card is at the top of its channel: the note goes beside it, not in a thread
        in_thread = review is not None and channel == review.channel_id
        await slack.ephemeral(
            click.user, channel, text, thread_ts=review.thread_ts if review and in_thread else None
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
        policy = self.deps.policy_of(review).policy
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
        detail: str | None = None,
    ) -> None:
        """Show a claimed decision, resume the agent with it, and post what followed.

        If the decision cannot be applied (database down, model unreachable before the tool
        ran), the claim is released and the buttons come back, so nothing is lost.
        ``detail``: the decision event's detail when no quorum names the approvers; by
        default the one stored with the claim (a call approved by a standing approval names
        the grant and its creators).
        """
        policy = self.deps.policy_of(claimed).policy
        self.deps.remember_secrets(claimed)  # before the tool runs and logs
        await self.show_decided(claimed, verdict_of(claimed, policy, approvals))
        thread = thread_of(claimed)
        decision = claimed.decision or Approve(claimed.decided_by or EXPIRY_ACTOR)
        if isinstance(decision, Expire) and not decision.text:
            # a stuck decision the sweeper turned into its expiry
            decision = Expire(expiry_words(policy.ttl_seconds))
        action = stored_action(decision.kind)  # the metrics label, as the dashboards know it
        status, tasks = self.turns.status, self.turns.tasks
        if tasks is not None:
            await tasks.move(claimed.ref, task_phase(decision))
        await status.working(thread, user=claimed.request.get("requested_by"))
        try:
            secrets = await self.turns.secrets_for(claimed.thread_id)
            context, stream = self.turns.streamed_context(
                thread,
                claimed.decided_by,
                secrets | self.deps.review_secrets(claimed),
                claimed.request.get("requested_by"),
            )
            if stream is not None and tasks is not None:
                stream.on_result = moving_task(claimed, stream.on_result, tasks)
            with metrics.agent_run("resume"):
                outcome = await self.deps.agent.answer(
                    claimed.thread_id, claimed.interrupt_id, decision, context=context
                )
        except Exception as error:
            metrics.decided(action, "failed")
            log.exception("applying %s on %s failed", action, claimed.ref)
            waiting = await self._after_failure(claimed, click, error)
            # after the notes are posted (a post in the thread clears its status in Slack)
            await status.finished(thread, self.turns.waiting_of(thread, requests_of(waiting)))
            if tasks is not None:
                await self._task_after_failure(claimed, decision, waiting)
            return
        if isinstance(outcome, Refused):
            metrics.decided(action, "refused")
            await self._refused(claimed, click, outcome)
            waiting = await self._waiting_in(claimed.thread_id, fallback=[])
            await status.finished(thread, self.turns.waiting_of(thread, requests_of(waiting)))
            return
        metrics.decided(action, "applied", since=started)
        await self._finish(claimed, approvals, detail)
        await self.show_receipt(claimed, outcome, approvals)
        try:
            await self.turns.present(
                thread, outcome, requester=claimed.request.get("requested_by"), streamed=stream
            )
        finally:
            await status.finished(thread, self.turns.waiting_calls(thread, outcome))
        if tasks is not None and task_phase(decision) == "approved":
            await tasks.move(claimed.ref, ran_phase(outcome, claimed.request))

    async def _finish(
        self, review: ReviewRow, approvals: tuple[str, ...], detail: str | None = None
    ) -> None:
        """Settle the claim with its decision event; its detail, unless given, is the one
        stored with the claim (so a claim the sweeper finishes names its grant too)."""
        policy = self.deps.policy_of(review).policy
        detail = review.decision_detail if detail is None else detail
        event = decision_event(review, approvals, policy, detail=detail)
        await self.deps.storage.finish(review.ref, event)

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
        if refused.reason == "left_unanswered":  # an approve-only interrupt's expiry
            await self._finish(review, ())  # expired once, audited; the sweeper is done
            await self.turns.present(thread_of(review), refused)
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
            policy = self.deps.policy_of(review).policy
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
        await self.show_decided(review, verdict_of(review, self.deps.policy_of(review).policy))
        if resumed is not None:
            await self.show_receipt(review, resumed, approvals)
            await self.turns.present(thread, resumed, recovering=True, requester=requester)
            return
        recap = await agent.recap(review.thread_id, review.request["tool_call"]["id"])
        await self.show_receipt(review, recap, approvals)
        await self.turns.present(thread, recap, recovering=True, requester=requester)

    async def _waiting_in(
        self, thread_id: str, *, fallback: list[PendingReview]
    ) -> list[PendingReview]:
        """The reviews the agent still waits on in the thread (``fallback`` when they cannot
        be read)."""
        try:
            return await self.deps.agent.pending_reviews(thread_id)
        except Exception:
            log.warning("could not re-read %s after a failure", thread_id, exc_info=True)
            return fallback

    async def _after_failure(
        self, review: ReviewRow, click: Click | None, error: Exception
    ) -> list[PendingReview]:
        """Settle or release a decision whose application failed; returns the requests still
        waiting in the thread (the released review among them), for the status line."""
        given_back = PendingReview(review.thread_id, review.interrupt_id, review.request)
        waiting = await self._waiting_in(review.thread_id, fallback=[given_back])
        still_pending = any(p.interrupt_id == review.interrupt_id for p in waiting)
        if not still_pending:  # the agent has the decision: settle it, with its event
            approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
            await self._finish(review, approvals)
            await self.deps.slack.say(
                thread_of(review), f"Your decision was applied, but then: {explain(error)}"
            )
            return waiting
        try:
            await self.deps.storage.release(review.ref)
        except Exception:  # the database is gone: the sweeper retries the claim later
            log.warning("could not release %s; the sweeper will retry it", review.ref)
            await self.notify(
                click,
                review,
                DB_DOWN + " Your decision is kept and will be applied when it is back.",
            )
            return waiting
        approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
        await self.repaint_pending(dataclasses.replace(review, status="pending"), approvals)
        await self.notify(click, review, explain(error))
        return waiting

    async def _task_after_failure(
        self, review: ReviewRow, decision: ReviewDecision, waiting: list[PendingReview]
    ) -> None:
        """The task once applying failed: waiting for review again if the decision was given
        back; otherwise how the call ended, as the agent's checkpoint has it (the tool ran,
        then the model failed), or the decision's phase if that cannot be read."""
        tasks = self.turns.tasks
        if tasks is None:
            return
        if any(p.interrupt_id == review.interrupt_id for p in waiting):
            await tasks.move(review.ref, "pending")
            return
        if task_phase(decision) != "approved":
            return  # declined or expired: already shown
        try:
            followed = await self.deps.agent.recap(
                review.thread_id, review.request["tool_call"].get("id")
            )
        except Exception:
            log.warning("could not read how %s ended", review.ref, exc_info=True)
            return
        await tasks.move(review.ref, ran_phase(followed, review.request))

    # -- the clock -----------------------------------------------------------------------

    async def expire(self, review: ReviewRow) -> None:
        """``claim_expiry``, then apply: nobody decided in time, so the agent is told the call
        did not run (fail closed). An interrupt that allows only approving cannot be told
        (``left_unanswered``): the review is finished as expired all the same, once."""
        policy = self.deps.policy_of(review).policy
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
        """In the card's thread (the conversation's, or under a routed card): the approvers,
        and the escalation targets once they joined them."""
        call = self.deps.policy_of(review)
        allowed = frozenset().union(*(ids or () for ids in call.approver_conditions))
        who = mentions(allowed | review.escalated_to)
        when = ""
        if review.expires_at:
            when = f" It expires {blocks.when(review.expires_at)}."
        await self.deps.slack.say(
            card_thread_of(review),
            f":alarm_clock: {who + ' ' if who else ''}`{review.tool_name}` is still waiting "
            f"for a decision.{when}",
        )

    async def escalate(self, review: ReviewRow) -> None:
        """``escalate`` was claimed (by this replica only): ping the escalation targets in the
        card's thread, where they may decide from now on, and record it."""
        targets = frozenset(review.escalate_to)  # as the policy said when it was asked
        when = f" It expires {blocks.when(review.expires_at)}." if review.expires_at else ""
        await self.deps.slack.say(
            card_thread_of(review),
            f":rotating_light: {mentions(targets)} `{escape(review.tool_name)}` is still "
            f"waiting for a decision, so it is escalated to you: you may decide it now.{when}",
        )
        await self.record("escalated", review, by=None, detail=", ".join(sorted(targets)))

    # -- repainting ----------------------------------------------------------------------

    async def repaint(self, ref: str) -> None:
        """Paint the review's messages as its row now stands."""
        review = await self.deps.storage.get(ref)
        if review is not None:
            await self.sync(review)

    async def sync(self, review: ReviewRow) -> None:
        """Repaint a message whose update Slack did not accept earlier."""
        policy = self.deps.policy_of(review).policy
        approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
        if review.status == "pending":
            await self.repaint_pending(review, approvals)
        else:
            await self.show_decided(review, verdict_of(review, policy, approvals))

    async def repaint_pending(self, review: ReviewRow, approvals: tuple[str, ...]) -> None:
        call = self.deps.policy_of(review)
        policy = call.policy
        changes = None
        if review.proposed_edit is not None:
            changes = blocks.changed_args(
                policy.redacted(review.request["tool_call"]["args"]),
                policy.redacted(review.proposed_edit),
            )
        progress = Progress(approvals, policy.quorum, review.proposed_by, changes)
        shown = shown_request(review, policy)
        names = await self.deps.slack.names.names_for(shown)
        preview = await self._preview_of(review)
        await self._paint(
            review,
            blocks.review_blocks(
                shown,
                review.ref,
                progress,
                policy_line(call),
                names=names,
                grantable=policy.grants is not None,
                preview=preview,
                version=review.version,
            ),
            blocks.review_fallback_text(review.request),
        )

    async def show_decided(self, review: ReviewRow, verdict: Verdict) -> None:
        shown = shown_request(
            dataclasses.replace(review, proposed_edit=None), self.deps.policy_of(review).policy
        )
        after = {name: new for name, (_, new) in (verdict.changes or {}).items()}
        final = with_args(shown, {**shown["tool_call"]["args"], **after})  # as it ran
        names = await self.deps.slack.names.names_for(final)
        receipt = await self._receipt_of(review)
        await self._paint(
            review,
            blocks.decided_blocks(shown, verdict, names=names, receipt=receipt),
            blocks.decided_text(review.request, verdict),
        )

    # -- previews and receipts (bot.previews) --------------------------------------------

    async def _preview_of(self, review: ReviewRow) -> list[dict[str, Any]]:
        """The preview part of a pending card; a failure to read it shows the card without."""
        cards = self.deps.cards
        if cards is None:
            return []
        try:
            context = self.deps.context(thread_of(review), review.request.get("requested_by"))
            return await cards.pending_blocks(review, self.deps.review_secrets(review), context)
        except Exception:
            log.warning("could not read the preview of %s", review.ref, exc_info=True)
            return []

    async def _receipt_of(self, review: ReviewRow) -> list[dict[str, Any]]:
        cards = self.deps.cards
        if cards is None:
            return []
        try:
            return await cards.decided_blocks(review, self.deps.review_secrets(review))
        except Exception:
            log.warning("could not read the receipt of %s", review.ref, exc_info=True)
            return []

    async def show_receipt(
        self, review: ReviewRow, outcome: RunOutcome, approvals: tuple[str, ...] = ()
    ) -> None:
        """Keep what the review's call did and repaint the decided card with it."""
        cards = self.deps.cards
        if cards is None:
            return
        try:
            kept = await cards.keep_receipt(review, outcome)
        except Exception:
            log.warning("could not keep the receipt of %s", review.ref, exc_info=True)
            return
        if kept:
            policy = self.deps.policy_of(review).policy
            await self.show_decided(review, verdict_of(review, policy, approvals))

    async def refresh_preview(self, ref: str) -> None:
        """Repaint a card whose preview just came in. Only a pending card is repainted; if a
        decision painted it meanwhile, the row is read again after and the card painted as
        it now stands, so the last paint is always the current state."""
        review = await self.deps.storage.get(ref)
        if review is None or review.status != "pending":
            return
        approvals = tuple(await self.deps.storage.approvals(review.ref, review.version))
        await self.repaint_pending(review, approvals)
        after = await self.deps.storage.get(ref)
        if after is not None and (after.status != "pending" or after.version != review.version):
            await self.sync(after)

    async def _messages_now(self, ref: str) -> tuple[str, ...]:
        """The messages a row read before its card was recorded did not know: a card is
        recorded just after Slack answered its post, and a decision from a surface that does
        not name the message (the Edit modal, the App Home) may come in between. Read again
        here; a card recorded after this read is repainted by its poster (``add_copy``)."""
        now = await self.deps.storage.get(ref) if ref else None
        return now.messages if now is not None else ()

    async def _paint(self, review: ReviewRow, body: list[dict[str, Any]], text: str) -> None:
        """Every message showing the review; if Slack still refuses one, the sweeper repaints
        them all later (``mark_repaint``). The flag is cleared only when the row says it is
        set: almost every update finds it clear, and a flag set since the row was read only
        costs one more repaint."""
        if review.card_channel:
            body = with_conversation(body, review.conversation_link, review.channel_id)
        messages = review.messages or await self._messages_now(review.ref)
        painted = await self.deps.slack.update_all(
            review.card_channel_id, messages, body, text, what=review.ref
        )
        if not painted:
            await self.deps.storage.mark_repaint(review.ref)
        elif review.ref and review.needs_sync:
            await self.deps.storage.mark_repaint(review.ref, False)
