"""The conversation flow: turn Slack activity into agent calls and agent outcomes into Slack
messages. Listeners stay thin (ack, parse, hand over); this is where the product behaves.

Every path tells a person what happened in words: a refusal, a stale click, an outage. Details go
to the log, never into the channel. A decision is stored with its claim before it is applied, so
a crash, an outage or a failed Slack call never loses it: the sweeper (`bot.sweeper`) finishes
what a dead process started and repaints messages Slack did not accept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks, logs, metrics, modals, mrkdwn, redaction
from bot.audit import AuditEvent, AuditLog, Outcome
from bot.blocks import Progress, Verdict
from bot.mrkdwn import escape
from bot.permissions import Approvers
from bot.policy import ToolPolicy
from bot.repeats import RepeatFilter
from bot.store import BotStore, Expired, ReviewRow
from bot.threads import SlackThread
from graph import AgentContext, AgentService, Refused, ReviewRequest, RunOutcome, ToolResult
from graph.decisions import Approve, Edit, Expire, Feedback, ReviewDecision
from graph.locks import LeaseTimeout

log = logging.getLogger(__name__)

DB_DOWN = "I can't reach my database right now, so nothing was changed. Please try again shortly."
BUSY = "This conversation is busy with another request; please try again in a moment."
MODEL_DOWN = "I couldn't reach the language model just now. Please try again shortly."
BROKEN = "Something went wrong on my side; the details are in my log."
FOUR_EYES = (
    "You asked for this call, so someone else has to approve it (four-eyes rule). "
    "You can still send Feedback."
)
WORKING_REACTION = "eyes"
EXPIRY_ACTOR = "expiry"


_OUTCOMES: dict[str, Outcome] = {
    "continue": "approved",
    "update": "edited",
    "feedback": "feedback",
    "expired": "expired",
}


def explain(error: BaseException) -> str:
    """A short, human sentence for a failure; the log gets the traceback."""
    if isinstance(error, psycopg.OperationalError | psycopg_pool.PoolTimeout):
        return DB_DOWN
    if isinstance(error, LeaseTimeout):
        return BUSY
    module = type(error).__module__
    if module.startswith(("anthropic", "httpx", "langchain_anthropic")):
        return MODEL_DOWN
    return BROKEN


REVIEW_EVENT = "approval_review"
REPLY_PAGES = 10  # a thread longer than 2,000 messages gets a second copy rather than a search


def review_metadata(ref: str) -> dict[str, Any]:
    """Message metadata naming the review a message shows, so it can be found again."""
    return {"event_type": REVIEW_EVENT, "event_payload": {"ref": ref}}


def review_ref_of(message: Mapping[str, Any]) -> str | None:
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != REVIEW_EVENT:
        return None
    payload = metadata.get("event_payload")
    ref = payload.get("ref") if isinstance(payload, Mapping) else None
    return ref if isinstance(ref, str) else None


def expiry_words(ttl_seconds: float) -> str:
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


@dataclass(frozen=True)
class Click:
    """One person's button press or modal submit on a review message."""

    user: str
    ref: str
    channel_id: str | None = None
    message_ts: str | None = None


def with_args(request: ReviewRequest, args: Mapping[str, Any]) -> ReviewRequest:
    """The request with other arguments, in the order the tool declares them."""
    call = request["tool_call"]
    order = [*request["tool"]["args_schema"].get("properties", {}), *call["args"]]
    ordered = {name: args[name] for name in dict.fromkeys(order) if name in args}
    ordered.update(args)
    return {**request, "tool_call": {"name": call["name"], "id": call["id"], "args": ordered}}


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
    action = review.action or "continue"
    if action == "update" and isinstance(review.edited_args, Mapping):
        before = policy.redacted(review.request["tool_call"]["args"])
        changes = blocks.changed_args(before, policy.redacted(review.edited_args))
        return Verdict("update", review.decided_by, at, changes=changes, approvers=approvers)
    if action == "feedback":
        return Verdict("feedback", review.decided_by, at, feedback=review.feedback or "")
    if action == "expired":
        return Verdict("expired", None, at)
    return Verdict("continue", review.decided_by, at, approvers=approvers)


def decision_of(action: str, user: str, data: Any) -> ReviewDecision:
    if action == "update":
        return Edit(data, user)
    if action == "feedback":
        return Feedback(str(data), user)
    return Approve(user)


class ReviewFlow:
    def __init__(
        self,
        service: AgentService,
        store: BotStore,
        client: AsyncWebClient,
        approvers: Approvers,
    ) -> None:
        self.service = service
        self.store = store
        self.client = client
        self.approvers = approvers
        self.audit = AuditLog(store.pool)
        self._bot_user_id: str | None = None
        self._told = RepeatFilter()
        self._expiring: set[asyncio.Task[None]] = set()

    async def bot_user_id(self) -> str | None:
        """The bot's own user id (to strip its mention), asked of Slack once."""
        if self._bot_user_id is None:
            reply = await self.client.auth_test()
            self._bot_user_id = reply.get("user_id")
        return self._bot_user_id

    def policy(self, tool: str) -> ToolPolicy:
        return self.approvers.policy.for_tool(tool)

    def context(self, thread: SlackThread, user: str | None) -> AgentContext:
        return AgentContext(slack=self.client, requester=user, team_id=thread.team_id)

    # -- conversations -------------------------------------------------------------------------

    async def converse(
        self,
        thread: SlackThread,
        user: str,
        text: str,
        message_ts: str,
        *,
        recovering: bool = False,
    ) -> None:
        """Run one user message through the agent, showing progress on their message.

        ``recovering``: a sweeper re-handles a message whose first handler died. The message
        has a stable id, so it is never added twice: a turn that got in is finished (or its
        results shown again) instead of being asked again.
        """
        message_id = f"slack:{thread.channel_id}:{message_ts}"
        await self._react(thread.channel_id, message_ts, add=True)
        try:
            await self.store.remember_conversation(
                thread.thread_id, thread.team_id, thread.channel_id, thread.thread_ts, user
            )
            outcome: RunOutcome | Refused | None = None
            if recovering and await self.service.has_message(thread.thread_id, message_id):
                outcome = await self.service.resume_interrupted(
                    thread.thread_id, context=self.context(thread, user)
                ) or await self.service.recap(thread.thread_id, after_message=message_id)
            else:
                with metrics.agent_run("turn"):
                    outcome = await self.service.start_turn(
                        thread.thread_id,
                        text,
                        user=user,
                        context=self.context(thread, user),
                        message_id=message_id,
                    )
            await self.present(thread, outcome, recovering=recovering, requester=user)
        except Exception as error:
            log.exception("turn failed in %s", thread.thread_id)
            await self.say(thread, explain(error))
        finally:
            await self._react(thread.channel_id, message_ts, add=False)

    async def present(
        self,
        thread: SlackThread,
        outcome: RunOutcome | Refused,
        *,
        recovering: bool = False,
        requester: str | None = None,
    ) -> None:
        """Post what a run produced: tool results, the agent's reply, then new reviews.

        ``recovering``: the caller finishes what a stopped process started, so a review it
        registered but never showed is shown now, whatever its age. Calls that ran without
        review are recorded in the audit trail (``requester``: who asked), once each.
        """
        if isinstance(outcome, Refused):
            text = (
                blocks.pending_reminder_text(len(outcome.pending))
                if outcome.reason == "reviews_pending"
                else outcome.message
            )
            await self.say(thread, text)
            return
        secrets = await self.secrets_for(thread.thread_id, outcome)
        for result in outcome.tool_results:
            await self._record_auto(thread, result, requester)
        for result in outcome.tool_results:
            if result.status != "declined":
                shown = dataclasses.replace(result, content=redaction.mask(result.content, secrets))
                await self._post(
                    thread, blocks.tool_result_blocks(shown), blocks.tool_result_text(shown)
                )
        if outcome.reply:
            reply = redaction.mask(outcome.reply, secrets)
            await self._post(thread, blocks.reply_blocks(reply), blocks.reply_text(reply))
        for review in outcome.pending:
            await self._post_review(thread, review.interrupt_id, review.request, recovering)

    async def secrets_for(
        self, thread_id: str, outcome: RunOutcome | None = None
    ) -> frozenset[str]:
        """Every redacted value this thread's output could repeat: from the arguments the
        outcome's calls ran with and proposes, and from every review of the thread (so a call
        whose result does not carry its arguments, or a reply quoting an earlier call, is
        covered). The values are also handed to the log filter. Nothing is read when the
        policy redacts nothing."""
        if not redaction.redacts_anything(self.approvers.policy):
            return frozenset()
        found: set[str] = set()

        def add(tool: str, args: Mapping[str, Any]) -> None:
            found.update(redaction.secret_values(args, self.policy(tool).redact))

        for result in outcome.tool_results if outcome else ():
            add(result.tool_name, result.args)
        for pending in outcome.pending if outcome else ():
            add(pending.request["tool_call"]["name"], pending.request["tool_call"]["args"])
        for tool, argument_sets in await self.store.thread_arguments(thread_id):
            for args in argument_sets:
                add(tool, args)
        logs.remember_secrets(found)
        return frozenset(found)

    async def _post_review(
        self,
        thread: SlackThread,
        interrupt_id: str,
        request: ReviewRequest,
        recovering: bool = False,
    ) -> None:
        """Show a review once. A review registered before but never stored as shown may be on
        screen all the same (its poster died between posting and storing the ts): the thread
        is searched for the message carrying its ref, and that message adopted, before a new
        one is posted. Should a second copy appear anyway, clicks on either act on the review
        and a decision paints both."""
        policy = self.policy(request["tool_call"]["name"])
        requested = self._event(
            "requested",
            thread.thread_id,
            interrupt_id,
            request,
            policy,
            channel_id=thread.channel_id,
        )
        ref = await self.store.add_review(
            thread.thread_id,
            interrupt_id,
            thread.team_id,
            thread.channel_id,
            thread.thread_ts,
            request,
            ttl_seconds=policy.ttl_seconds,
            remind_before_seconds=policy.remind_before_seconds,
            audit=requested,  # in the same statement: the trail has it before any click
        )
        seen_before = ref is None
        if ref is None:
            # Already registered: on screen (a sibling of the review just decided), or its
            # poster died before storing it, in which case it is shown now. A live run waits a
            # while first, so a sibling still being posted by this very run is not posted twice.
            ref = await self.store.unposted_review(
                thread.thread_id, interrupt_id, older_than_seconds=0 if recovering else 30
            )
        if ref is None:
            return
        logs.remember_secrets(redaction.secret_values(request["tool_call"]["args"], policy.redact))
        ts = await self._find_review_message(thread, ref) if seen_before else None
        if ts is None:
            shown = with_args(request, policy.redacted(request["tool_call"]["args"]))
            progress = Progress((), policy.quorum) if policy.quorum > 1 else None
            ts = await self._post(
                thread,
                blocks.review_blocks(shown, ref, progress),
                blocks.review_fallback_text(request),
                metadata=review_metadata(ref),
            )
        if ts:
            await self.store.set_message(ref, ts)

    async def _find_review_message(self, thread: SlackThread, ref: str) -> str | None:
        """The ts of our message in the thread that carries ``ref`` in its metadata, if any.

        None when there is none or Slack cannot say: then the review is posted (again),
        since a second copy is harmless and a review nobody sees is not.
        """
        me = await self.bot_user_id()
        cursor: str | None = None
        for _ in range(REPLY_PAGES):
            try:
                page = await self.client.conversations_replies(
                    channel=thread.channel_id,
                    ts=thread.thread_ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            except Exception:
                log.warning("could not look for review %s in %s", ref, thread.thread_id)
                return None
            for message in page.get("messages") or []:
                if message.get("user") == me and review_ref_of(message) == ref:
                    log.info("review %s was shown before; adopting its message", ref)
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                return None
        return None

    # -- reviews -------------------------------------------------------------------------------

    async def admissible(self, click: Click, action: str) -> ReviewRow | str:
        """The review a click may act on, or the sentence to tell the clicker instead."""
        review = await self.store.get(click.ref)
        if review is None:
            log.warning("click with unknown review ref from %s", click.user)
            return "I don't recognise this review. It may come from an old version of me."
        if click.channel_id and click.channel_id != review.channel_id:
            # The ref is the key, so any copy of the review may be clicked; but only where the
            # review was posted: a ref carried into another conversation finds nothing.
            log.warning("click on review %s from another channel (%s)", click.ref, click.user)
            return "This button doesn't belong to this message, so I ignored it."
        if not await self.approvers.may_decide(review.tool_name, click.user):
            who = await self.approvers.describe(review.tool_name)
            await self._record_review("refused", review, by=click.user, detail="not an approver")
            return (
                f"Only {who} may decide `{review.tool_name}` calls, so I did nothing. "
                "Ask one of them to take a look."
            )
        if action != "feedback" and self.approvers.own_call_forbidden(
            review.tool_name,
            click.user,
            review.request.get("requested_by"),
            review.request.get("requesters"),
        ):
            await self._record_review("refused", review, by=click.user, detail="four-eyes")
            return FOUR_EYES
        if review.status != "pending":
            return blocks.stale_text(review.action, review.decided_by, review.decided_at)
        if review.lapsed:
            return await self._too_late(Expired(review), click, action, background=True)
        return review

    async def open_modal(self, click: Click, trigger_id: str, kind: str) -> None:
        """Open the Edit or Feedback modal at once: the click's trigger lives only 3 s."""
        try:
            review = await self.admissible(click, "update" if kind == "edit" else "feedback")
            if isinstance(review, str):
                await self.tell(review, click, None)
                return
            policy = self.policy(review.tool_name)
            view = (
                modals.edit_modal(current_request(review), review.ref, policy.redact)
                if kind == "edit"
                else modals.feedback_modal(shown_request(review, policy), review.ref)
            )
            await self.client.views_open(trigger_id=trigger_id, view=view)
        except Exception as error:
            log.exception("opening the %s modal for %s failed", kind, click.ref)
            await self.tell(explain(error), click, None)

    async def check_submission(
        self, click: Click, kind: str, values: Mapping[str, Any], first_block: str
    ) -> tuple[ReviewRow, Any] | dict[str, str]:
        """Validate a submitted modal within Slack's 3 s: the review and the decision's data,
        or errors keyed by block id to show under the offending inputs."""
        try:
            review = await self.admissible(click, "update" if kind == "edit" else "feedback")
            if isinstance(review, str):
                return {first_block: await self.plain(review)}
            if kind == "feedback":
                text, errors = modals.parse_feedback(values)
                return errors if errors or text is None else (review, text)
            policy = self.policy(review.tool_name)
            request = current_request(review)
            parsed = modals.parse_edit(request, values, policy.redact)
            if parsed.errors:
                return parsed.errors
            refused = await self.service.check(
                review.thread_id, review.interrupt_id, {"action": "update", "data": parsed.args}
            )
        except Exception as error:
            log.exception("checking a %s submission for %s failed", kind, click.ref)
            return {first_block: await self.plain(explain(error))}
        if refused is not None:
            block = modals.error_block_for(refused.argument, request, policy.redact)
            words = redaction.mask(refused.message, self.review_secrets(review))
            return {block: await self.plain(words)}
        return review, parsed.args

    async def decide(
        self, click: Click, action: str, data: Any = None, review: ReviewRow | None = None
    ) -> None:
        """Apply a person's decision; an outage before anything happened is said, not raised."""
        try:
            await self._decide(click, action, data, review)
        except Exception as error:
            log.exception("deciding %s on %s failed", action, click.ref)
            await self.tell(explain(error), click, review)

    async def _decide(self, click: Click, action: str, data: Any, review: ReviewRow | None) -> None:
        started = time.perf_counter()
        found = review or await self.admissible(click, action)
        if isinstance(found, str):
            metrics.decided(action, "rejected")
            await self.tell(found, click, None)
            return
        if click.message_ts and click.message_ts not in found.messages:
            # A copy we never stored (its poster died first): the click names it, so the
            # decision is painted there too.
            await self.store.set_message(found.ref, click.message_ts)
            found = dataclasses.replace(
                found,
                message_ts=found.message_ts or click.message_ts,
                message_copies=(*found.messages, click.message_ts),
            )
        policy = self.policy(found.tool_name)
        approvals: tuple[str, ...] = ()
        if policy.quorum > 1 and action in ("continue", "update"):
            reached = await self._count_approval(found, click, action, data, policy)
            if reached is None:
                return
            found, action, data, approvals = reached
        claimed = await self.store.claim(found.ref, decision_of(action, click.user, data))
        if isinstance(claimed, Expired):
            await self.tell(await self._too_late(claimed, click, action), click, found)
            return
        if claimed is None:
            metrics.decided(action, "stale")
            latest = await self.store.get(found.ref)
            await self.tell(
                blocks.stale_text(
                    latest.action if latest else None,
                    latest.decided_by if latest else None,
                    latest.decided_at if latest else None,
                ),
                click,
                found,
            )
            return
        async with self.store.deciding(claimed.ref):
            await self.apply(claimed, approvals, click=click, started=started)

    async def _count_approval(
        self, review: ReviewRow, click: Click, action: str, data: Any, policy: ToolPolicy
    ) -> tuple[ReviewRow, str, Any, tuple[str, ...]] | None:
        """Quorum: record this approval; return the decision to apply once enough agree.

        An edit becomes the new proposal and counts as its editor's approval; approvals of
        the earlier arguments do not carry over to it.
        """
        current = review
        if action == "update":
            edited = await self.store.propose_edit(review.ref, review.version, data, click.user)
            if isinstance(edited, Expired):
                await self.tell(await self._too_late(edited, click, action), click, review)
                return None
            if edited is None:
                await self.tell(
                    "Someone changed this review meanwhile; please look again.", click, review
                )
                return None
            current = edited
        approved = await self.store.approve(current.ref, current.version, click.user)
        if isinstance(approved, Expired):
            await self.tell(await self._too_late(approved, click, action), click, current)
            return None
        if approved is None:
            latest = await self.store.get(current.ref)
            await self.tell(
                blocks.stale_text(
                    latest.action if latest else None,
                    latest.decided_by if latest else None,
                    latest.decided_at if latest else None,
                ),
                click,
                current,
            )
            return None
        approvals = tuple(approved)
        if len(approvals) < policy.quorum:
            await self._record_review(
                "approval_recorded",
                current,
                by=click.user,
                detail=f"{len(approvals)} of {policy.quorum}",
            )
            metrics.decided(action, "approval_recorded")
            await self.repaint_pending(current, approvals)
            await self.tell(
                f"Your approval is recorded: {len(approvals)} of {policy.quorum}.", click, current
            )
            return None
        if current.proposed_edit is not None:
            return current, "update", current.proposed_edit, approvals
        return current, "continue", None, approvals

    async def _too_late(
        self, expired: Expired, click: Click, action: str, *, background: bool = False
    ) -> str:
        """A decision that reached an expired review: recorded as refused, nothing stored, and
        the review expired now (not at the next sweep), so the agent is told and the message
        says *Expired*. The sentence to tell the clicker is returned.

        ``background``: expire after answering (a modal submit must be answered within 3 s).
        """
        if not background:  # admissible's caller counts its own refusals
            metrics.decided(action, "expired")
        await self._record_review("refused", expired.review, by=click.user, detail="expired")
        if background:
            task = asyncio.create_task(self._expire_quietly(expired.review))
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)
        else:
            await self._expire_quietly(expired.review)
        return expired_text(expired.at)

    async def _expire_quietly(self, review: ReviewRow) -> None:
        try:
            await self.expire(review)
        except Exception:  # the sweeper expires it later
            log.exception("expiring %s after a late click failed", review.ref)

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
        action = claimed.action or "continue"
        policy = self.policy(claimed.tool_name)
        logs.remember_secrets(self.review_secrets(claimed))  # before the tool runs and logs
        await self._show_decided(claimed, verdict_of(claimed, policy, approvals))
        thread = SlackThread(claimed.team_id, claimed.channel_id, claimed.thread_ts)
        by = claimed.decided_by or EXPIRY_ACTOR
        decision = claimed.decision or Approve(by)
        if isinstance(decision, Expire) and not decision.text:
            # a stuck decision the sweeper turned into its expiry
            decision = Expire(expiry_words(policy.ttl_seconds))
        try:
            with metrics.agent_run("resume"):
                outcome = await self.service.answer(
                    claimed.thread_id,
                    claimed.interrupt_id,
                    decision,
                    context=self.context(thread, claimed.decided_by),
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
        await self.store.finish(claimed.ref, self._decision_event(claimed, approvals))
        await self.present(thread, outcome, requester=claimed.request.get("requested_by"))

    async def repaint_pending(self, review: ReviewRow, approvals: tuple[str, ...]) -> None:
        policy = self.policy(review.tool_name)
        changes = None
        if review.proposed_edit is not None:
            changes = blocks.changed_args(
                policy.redacted(review.request["tool_call"]["args"]),
                policy.redacted(review.proposed_edit),
            )
        progress = Progress(approvals, policy.quorum, review.proposed_by, changes)
        await self._update(
            review,
            blocks.review_blocks(shown_request(review, policy), review.ref, progress),
            blocks.review_fallback_text(review.request),
        )

    async def _after_failure(
        self, review: ReviewRow, click: Click | None, error: Exception
    ) -> None:
        try:
            pending = await self.service.pending_reviews(review.thread_id)
            still_pending = any(p.interrupt_id == review.interrupt_id for p in pending)
        except Exception:
            log.warning("could not re-read %s after a failure", review.thread_id, exc_info=True)
            still_pending = True
        thread = SlackThread(review.team_id, review.channel_id, review.thread_ts)
        if not still_pending:  # the agent has the decision: settle it, with its event
            approvals = tuple(await self.store.approvals(review.ref, review.version))
            await self.store.finish(review.ref, self._decision_event(review, approvals))
            await self.say(thread, f"Your decision was applied, but then: {explain(error)}")
            return
        try:
            await self.store.release(review.ref)
        except Exception:  # the database is gone: the sweeper retries the claim later
            log.warning("could not release %s; the sweeper will retry it", review.ref)
            await self._notify(
                click,
                review,
                DB_DOWN + " Your decision is kept and will be applied when it is back.",
            )
            return
        approvals = tuple(await self.store.approvals(review.ref, review.version))
        await self.repaint_pending(dataclasses.replace(review, status="pending"), approvals)
        await self._notify(click, review, explain(error))

    def review_secrets(self, review: ReviewRow) -> frozenset[str]:
        """The redacted values of one review: as proposed, edited, or awaiting a quorum."""
        redact = self.policy(review.tool_name).redact
        sets = (review.request["tool_call"]["args"], review.edited_args, review.proposed_edit)
        return frozenset().union(
            *(redaction.secret_values(args, redact) for args in sets if args is not None)
        )

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
        await self.store.release(review.ref)
        approvals = tuple(await self.store.approvals(review.ref, review.version))
        await self.repaint_pending(dataclasses.replace(review, status="pending"), approvals)
        words = redaction.mask(refused.message, self.review_secrets(review))
        await self._notify(click, review, escape(words))

    async def recover_applied(self, review: ReviewRow, refused: Refused) -> None:
        """The agent already has a decision for this review (this one, applied before a crash,
        or another): settle the row, repaint the message, and post what followed."""
        previous = refused.previous
        mine = previous is not None and previous.decided_by == (review.decided_by or EXPIRY_ACTOR)
        thread = SlackThread(review.team_id, review.channel_id, review.thread_ts)
        requester = review.request.get("requested_by")
        if previous is not None and not mine:
            # Their run may have stopped before its tools ran (e.g. this row's claim turned
            # into the expiry meanwhile): finish it first, as below; a run at rest is left be.
            resumed = await self.service.resume_interrupted(
                review.thread_id, context=self.context(thread, previous.decided_by)
            )
            theirs = dataclasses.replace(
                review,
                action=previous.action,
                decided_by=previous.decided_by,
                decided_at=previous.decided_at,
                edited_args=None,
            )
            await self.store.finish(
                review.ref,
                self._decision_event(theirs, (), detail="applied before a restart"),
                action=previous.action,
                by=previous.decided_by,
                at=previous.decided_at,
            )
            await self._show_decided(
                review, Verdict(previous.action, previous.decided_by, previous.decided_at)
            )
            if resumed is not None:
                await self.present(thread, resumed, recovering=True, requester=requester)
            return
        # Died after the agent took the decision in but before its tools ran: finish that run
        # first (the row stays 'deciding' if this fails, so the sweeper tries again).
        resumed = await self.service.resume_interrupted(
            review.thread_id, context=self.context(thread, review.decided_by)
        )
        approvals = tuple(await self.store.approvals(review.ref, review.version))
        await self.store.finish(review.ref, self._decision_event(review, approvals))
        await self._show_decided(review, verdict_of(review, self.policy(review.tool_name)))
        if resumed is not None:
            await self.present(thread, resumed, recovering=True, requester=requester)
            return
        recap = await self.service.recap(review.thread_id, review.request["tool_call"]["id"])
        await self.present(thread, recap, recovering=True, requester=requester)

    # -- the audit trail -------------------------------------------------------------------

    def _decision_event(
        self, review: ReviewRow, approvals: tuple[str, ...], *, detail: str | None = None
    ) -> AuditEvent:
        """The event that settles a review: what was decided, by whom (every approver of a
        quorum in ``detail``). Every call of :meth:`BotStore.finish` passes one."""
        return self._review_event(
            _OUTCOMES.get(review.action or "continue", "approved"),
            review,
            by=review.decided_by,
            detail=", ".join(approvals) or detail,
        )

    async def _record_auto(
        self, thread: SlackThread, result: ToolResult, requester: str | None
    ) -> None:
        """A call that ran without review: recorded with the rule that let it (once per call,
        however often its results are presented)."""
        if result.auto_rule is None:
            return
        policy = self.policy(result.tool_name)
        args = policy.redacted(result.args)
        await self._append(
            AuditEvent(
                outcome="auto_approved",
                thread_id=thread.thread_id,
                interrupt_id="",
                tool_call_id=result.tool_call_id,
                tool_name=result.tool_name,
                proposed_args=args,
                executed_args=args,
                requested_by=requester,
                channel_id=thread.channel_id,
                detail=result.auto_rule,
            )
        )

    async def _record_review(
        self, outcome: Outcome, review: ReviewRow, *, by: str | None, detail: str | None = None
    ) -> None:
        await self._append(self._review_event(outcome, review, by=by, detail=detail))

    def _review_event(
        self, outcome: Outcome, review: ReviewRow, *, by: str | None, detail: str | None = None
    ) -> AuditEvent:
        return self._event(
            outcome,
            review.thread_id,
            review.interrupt_id,
            review.request,
            self.policy(review.tool_name),
            by=by,
            detail=detail,
            edited=review.edited_args if review.action == "update" else None,
            channel_id=review.channel_id,
            message_ts=review.message_ts,
        )

    def _event(
        self,
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
    ) -> AuditEvent:
        """An audit entry, with the arguments redacted per policy."""
        proposed = policy.redacted(request["tool_call"]["args"])
        executed = None
        if outcome == "approved":
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
        )

    async def _append(self, event: AuditEvent) -> None:
        """Append to the audit trail; a failure is logged, not raised: the decision itself is
        already safe in the review row."""
        try:
            await self.audit.record(event)
        except Exception:
            log.exception(
                "could not write the audit trail (%s on %s)", event.outcome, event.interrupt_id
            )

    # -- the sweeper's work ------------------------------------------------------------------

    async def expire(self, review: ReviewRow) -> None:
        """Fail closed: nobody decided in time, so the agent is told the call did not run."""
        policy = self.policy(review.tool_name)
        claimed = await self.store.claim(review.ref, Expire(expiry_words(policy.ttl_seconds)))
        if isinstance(claimed, ReviewRow):  # None: decided meanwhile, or not yet expired
            async with self.store.deciding(claimed.ref):  # the agent may take a while
                await self.apply(claimed)

    async def remind(self, review: ReviewRow) -> None:
        allowed = self.approvers.allowed_for(review.tool_name) or frozenset()
        who = " ".join(
            f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>" for i in sorted(allowed)
        )
        when = ""
        if review.expires_at:
            when = f" It expires {blocks.when(review.expires_at)}."
        thread = SlackThread(review.team_id, review.channel_id, review.thread_ts)
        await self.say(
            thread,
            f":alarm_clock: {who + ' ' if who else ''}`{review.tool_name}` is still waiting "
            f"for a decision.{when}",
        )

    async def sync(self, review: ReviewRow) -> None:
        """Repaint a message whose update Slack did not accept earlier."""
        policy = self.policy(review.tool_name)
        if review.status == "pending":
            approvals = tuple(await self.store.approvals(review.ref, review.version))
            await self.repaint_pending(review, approvals)
        else:
            approvals = tuple(await self.store.approvals(review.ref, review.version))
            await self._show_decided(review, verdict_of(review, policy, approvals))

    # -- Slack output --------------------------------------------------------------------------

    async def _show_decided(self, review: ReviewRow, verdict: Verdict) -> None:
        shown = shown_request(
            dataclasses.replace(review, proposed_edit=None), self.policy(review.tool_name)
        )
        await self._update(
            review,
            blocks.decided_blocks(shown, verdict),
            blocks.decided_text(review.request, verdict),
        )

    async def _update(self, review: ReviewRow, body: list[dict[str, Any]], text: str) -> None:
        """chat.update every message showing the review, with the SDK's retries; if Slack
        still refuses one, the sweeper repaints them all later.

        A copy someone deleted is nothing to paint. The repaint flag is cleared only when the
        row says it is set: almost every update finds it clear, and a flag set since the row
        was read only costs one more repaint.
        """
        painted = [await self._paint(review, ts, body, text) for ts in review.messages]
        if not all(painted):
            await self.store.mark_unsynced(review.ref)
        elif review.ref and review.needs_sync:
            await self.store.mark_unsynced(review.ref, False)

    async def _paint(
        self, review: ReviewRow, ts: str, body: list[dict[str, Any]], text: str
    ) -> bool:
        try:
            await self.client.chat_update(channel=review.channel_id, ts=ts, text=text, blocks=body)
        except SlackApiError as error:
            if error.response.get("error") == "message_not_found":
                return True
            log.exception("chat.update failed for review %s; will retry", review.ref)
            return False
        except Exception:
            log.exception("chat.update failed for review %s; will retry", review.ref)
            return False
        return True

    async def _post(
        self,
        thread: SlackThread,
        body: list[dict[str, Any]],
        text: str,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> str | None:
        try:
            reply = await self.client.chat_postMessage(
                channel=thread.channel_id,
                thread_ts=thread.thread_ts,
                text=text,
                blocks=body,
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata,
            )
        except Exception:
            log.exception("chat.postMessage failed in %s", thread.thread_id)
            return None
        return str(reply.get("ts")) if reply.get("ts") else None

    async def say(self, thread: SlackThread, text: str) -> None:
        await self._post(thread, blocks.notice_blocks(text), text)

    async def _notify(self, click: Click | None, review: ReviewRow, text: str) -> None:
        """Tell the clicker privately; with nobody clicking (the sweeper), tell the thread."""
        if click is not None:
            await self.tell(text, click, review)
        else:
            await self.say(SlackThread(review.team_id, review.channel_id, review.thread_ts), text)

    async def plain(self, text: str) -> str:
        """A message as plain words for a modal error, people named as ``@name``."""
        names = await self.approvers.user_names(mrkdwn.mentioned_users(text))
        return modals.plain(text, names)

    async def tell(self, text: str, click: Click, review: ReviewRow | None) -> None:
        """An ephemeral note only the clicker sees, in the review's thread; the same note to
        the same person about the same review is said once a minute at most (`RepeatFilter`),
        so clicking a refused button again does not stack identical refusals."""
        if not self._told.first((click.user, click.ref, text)):
            return
        if review is None:
            try:
                review = await self.store.get(click.ref)
            except Exception:  # the database is down: still answer, outside the thread
                log.warning("cannot look up %s to tell %s: %s", click.ref, click.user, text)
        channel = click.channel_id or (review.channel_id if review else None)
        if channel is None:
            log.warning("no channel to tell %s: %s", click.user, text)
            return
        try:
            await self.client.chat_postEphemeral(
                channel=channel,
                user=click.user,
                text=text,
                thread_ts=review.thread_ts if review else None,
            )
        except Exception:
            log.exception("chat.postEphemeral failed for %s", click.user)

    async def _react(self, channel: str, ts: str, *, add: bool) -> None:
        try:
            if add:
                await self.client.reactions_add(
                    channel=channel, timestamp=ts, name=WORKING_REACTION
                )
            else:
                await self.client.reactions_remove(
                    channel=channel, timestamp=ts, name=WORKING_REACTION
                )
        except Exception:  # progress is a nicety; never fail a turn over it
            log.debug("reaction %s failed", "add" if add else "remove", exc_info=True)
