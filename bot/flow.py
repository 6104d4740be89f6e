"""The conversation flow: turn Slack activity into agent calls and agent outcomes into Slack
messages. Listeners stay thin (ack, parse, hand over); this is where the product behaves.

Every path tells a person what happened in words: a refusal, a stale click, an outage. Details go
to the log, never into the channel.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.blocks import Verdict
from bot.permissions import Approvers
from bot.store import BotStore, ReviewRow
from bot.threads import SlackThread
from graph import AgentContext, AgentService, Refused, RunOutcome
from graph.locks import LeaseTimeout

log = logging.getLogger(__name__)

DB_DOWN = "I can't reach my database right now, so nothing was changed. Please try again shortly."
BUSY = "This conversation is busy with another request; please try again in a moment."
MODEL_DOWN = "I couldn't reach the language model just now. Please try again shortly."
BROKEN = "Something went wrong on my side; the details are in my log."
WORKING_REACTION = "eyes"


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


@dataclass(frozen=True)
class Click:
    """One person's button press or modal submit on a review message."""

    user: str
    ref: str
    channel_id: str | None = None
    message_ts: str | None = None


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

    def context(self, thread: SlackThread, user: str) -> AgentContext:
        return AgentContext(slack=self.client, requester=user, team_id=thread.team_id)

    # -- conversations -------------------------------------------------------------------------

    async def converse(self, thread: SlackThread, user: str, text: str, message_ts: str) -> None:
        """Run one user message through the agent, showing progress on their message."""
        await self.store.remember_conversation(
            thread.thread_id, thread.team_id, thread.channel_id, thread.thread_ts, user
        )
        await self._react(thread.channel_id, message_ts, add=True)
        try:
            outcome = await self.service.start_turn(
                thread.thread_id, text, user=user, context=self.context(thread, user)
            )
            await self.present(thread, outcome)
        except Exception as error:
            log.exception("turn failed in %s", thread.thread_id)
            await self.say(thread, explain(error))
        finally:
            await self._react(thread.channel_id, message_ts, add=False)

    async def present(self, thread: SlackThread, outcome: RunOutcome | Refused) -> None:
        """Post what a run produced: tool results, the agent's reply, then new reviews."""
        if isinstance(outcome, Refused):
            text = (
                blocks.pending_reminder_text(len(outcome.pending))
                if outcome.reason == "reviews_pending"
                else outcome.message
            )
            await self.say(thread, text)
            return
        for result in outcome.tool_results:
            if result.status != "declined":
                await self._post(
                    thread,
                    blocks.tool_result_blocks(result),
                    f"{result.tool_name}: {result.content[:200]}",
                )
        if outcome.reply:
            await self._post(thread, blocks.reply_blocks(outcome.reply), outcome.reply[:3000])
        for review in outcome.pending:
            ref = await self.store.add_review(
                thread.thread_id,
                review.interrupt_id,
                thread.team_id,
                thread.channel_id,
                thread.thread_ts,
                review.request,
            )
            if ref is None:
                continue  # already on screen (a sibling of the review just decided)
            ts = await self._post(
                thread,
                blocks.review_blocks(review.request, ref),
                blocks.review_fallback_text(review.request),
            )
            if ts:
                await self.store.set_message(ref, ts)

    # -- reviews -------------------------------------------------------------------------------

    async def admissible(self, click: Click) -> ReviewRow | str:
        """The review a click may act on, or the sentence to tell the clicker instead."""
        review = await self.store.get(click.ref)
        if review is None:
            log.warning("click with unknown review ref from %s", click.user)
            return "I don't recognise this review. It may come from an old version of me."
        if click.channel_id and (
            click.channel_id != review.channel_id
            or (click.message_ts and review.message_ts and click.message_ts != review.message_ts)
        ):
            log.warning("click on review %s from another message (%s)", click.ref, click.user)
            return "This button doesn't belong to this message, so I ignored it."
        if not await self.approvers.may_decide(review.tool_name, click.user):
            who = self.approvers.describe(review.tool_name)
            return (
                f"Only {who} may decide `{review.tool_name}` calls, so I did nothing. "
                "Ask one of them to take a look."
            )
        if review.status != "pending":
            return blocks.stale_text(review.action, review.decided_by, review.decided_at)
        return review

    async def decide(
        self, click: Click, action: str, data: Any = None, review: ReviewRow | None = None
    ) -> None:
        """Apply a decision: claim the review, show it decided, resume the agent, post results.

        If the decision cannot be applied (database down, model unreachable before the tool
        ran), the claim is released and the buttons come back, so nothing is lost.
        """
        found = review or await self.admissible(click)
        if isinstance(found, str):
            await self.tell(found, click, None)
            return
        claimed = await self.store.claim(found.ref, action, click.user)
        if claimed is not None and claimed.message_ts is None and click.message_ts:
            # Clicked before we stored the message's ts: the click names the message.
            await self.store.set_message(claimed.ref, click.message_ts)
            claimed = dataclasses.replace(claimed, message_ts=click.message_ts)
        if claimed is None:
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
        found = claimed
        verdict = self._verdict(found, action, click.user, data)
        await self._show_decided(found, verdict)
        thread = SlackThread(found.team_id, found.channel_id, found.thread_ts)
        decision: dict[str, Any] = {"action": action, "by": click.user}
        if data is not None:
            decision["data"] = data
        try:
            outcome = await self.service.answer(
                found.thread_id,
                found.interrupt_id,
                decision,
                context=self.context(thread, click.user),
            )
        except Exception as error:
            log.exception("applying %s on %s failed", action, found.ref)
            await self._after_failure(found, click, error)
            return
        if isinstance(outcome, Refused):
            await self._refused(found, click, outcome)
            return
        await self.store.finish(
            found.ref,
            edited_args=data if action == "update" else None,
            feedback=data if action == "feedback" else None,
        )
        await self.present(thread, outcome)

    def _verdict(self, review: ReviewRow, action: str, user: str, data: Any) -> Verdict:
        now = datetime.now(UTC)
        if action == "update" and isinstance(data, Mapping):
            changes = blocks.changed_args(review.request["tool_call"]["args"], data)
            return Verdict("update", user, now, changes=changes)
        if action == "feedback":
            return Verdict("feedback", user, now, feedback=str(data))
        return Verdict("continue", user, now)

    async def _after_failure(self, review: ReviewRow, click: Click, error: Exception) -> None:
        pending = []
        try:
            pending = await self.service.pending_reviews(review.thread_id)
        except Exception:
            log.warning("could not re-read %s after a failure", review.thread_id, exc_info=True)
            still_pending = True
        else:
            still_pending = any(p.interrupt_id == review.interrupt_id for p in pending)
        if still_pending:
            await self.store.release(review.ref)
            await self._update(
                review,
                blocks.review_blocks(review.request, review.ref),
                blocks.review_fallback_text(review.request),
            )
            await self.tell(explain(error), click, review)
            return
        await self.store.finish(review.ref)
        thread = SlackThread(review.team_id, review.channel_id, review.thread_ts)
        await self.say(thread, f"Your decision was applied, but then: {explain(error)}")

    async def _refused(self, review: ReviewRow, click: Click, refused: Refused) -> None:
        if refused.reason == "not_pending":
            previous = refused.previous
            await self.store.finish(
                review.ref,
                action=previous.action if previous else None,
                by=previous.decided_by if previous else None,
                at=previous.decided_at if previous else None,
            )
            if previous:
                verdict = Verdict(previous.action, previous.decided_by, previous.decided_at)
                await self._show_decided(review, verdict)
                await self.tell(
                    blocks.stale_text(previous.action, previous.decided_by, previous.decided_at),
                    click,
                    review,
                )
            else:
                await self.tell("This review is no longer waiting for a decision.", click, review)
            return
        await self.store.release(review.ref)
        await self._update(
            review,
            blocks.review_blocks(review.request, review.ref),
            blocks.review_fallback_text(review.request),
        )
        await self.tell(refused.message, click, review)

    # -- Slack output --------------------------------------------------------------------------

    async def _show_decided(self, review: ReviewRow, verdict: Verdict) -> None:
        await self._update(
            review,
            blocks.decided_blocks(review.request, verdict),
            blocks.decided_text(review.request, verdict),
        )

    async def _update(self, review: ReviewRow, body: list[dict[str, Any]], text: str) -> None:
        if not review.message_ts:
            return
        try:
            await self.client.chat_update(
                channel=review.channel_id, ts=review.message_ts, text=text, blocks=body
            )
        except Exception:
            log.exception("chat.update failed for review %s", review.ref)

    async def _post(self, thread: SlackThread, body: list[dict[str, Any]], text: str) -> str | None:
        try:
            reply = await self.client.chat_postMessage(
                channel=thread.channel_id,
                thread_ts=thread.thread_ts,
                text=text,
                blocks=body,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception:
            log.exception("chat.postMessage failed in %s", thread.thread_id)
            return None
        return str(reply.get("ts")) if reply.get("ts") else None

    async def say(self, thread: SlackThread, text: str) -> None:
        await self._post(thread, blocks.notice_blocks(text), text)

    async def tell(self, text: str, click: Click, review: ReviewRow | None) -> None:
        """An ephemeral note only the clicker sees."""
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
