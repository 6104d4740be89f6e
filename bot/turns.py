"""Conversations: a person's message becomes an agent turn, and what the run produced
(tool results, the reply, new reviews) becomes Slack messages.

A review is registered (transition ``register``, with its ``requested`` audit entry) before it
is shown, and shown once: a copy a dead poster left on screen is found by its metadata and
adopted. Calls that ran without review are audited here, once each. A call that a standing
approval covers is decided on its authority instead of shown (``bot.review.standing``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bot import blocks, logs, metrics, preview_blocks, redaction
from bot.blocks import Progress
from bot.failures import explain
from bot.mrkdwn import decode_incoming
from bot.policy_blocks import policy_line
from bot.policy_rules import CallPolicy
from bot.previews import posted_forms
from bot.review.audit_events import audit_event, auto_event, requested_event
from bot.review.deps import Deps
from bot.review.shown import with_args
from bot.routing import ChannelDirectory, Router, waits_in_text, with_conversation
from bot.slack_out import review_metadata
from bot.status import ThreadStatus
from bot.store import BotStore
from bot.threads import SlackThread
from graph import Approve, Refused, ReviewRequest, RunOutcome, ToolResult, failure_words

if TYPE_CHECKING:
    from bot.review.standing import StandingApprovals
    from bot.streaming import SlackReplyStream
    from bot.task_cards import TaskCards
    from graph import AgentContext

log = logging.getLogger(__name__)

HELLO = "Hi! Tell me what you need, and I'll ask before I act."


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text)
    return text.strip()


def event_thread(event: dict[str, Any], team_id: str | None) -> SlackThread:
    return SlackThread(team_id, event["channel"], event.get("thread_ts") or event["ts"])


class Turns:
    def __init__(self, deps: Deps, events: BotStore, router: Router | None = None) -> None:
        self.deps = deps
        self.events = events  # events and conversations (not reviews)
        self.router = router or Router(ChannelDirectory(deps.slack.client), deps.approvers)
        self.standing: StandingApprovals | None = None  # set by the flow (``bot.flow``)
        self.status = ThreadStatus(deps.slack)  # the thread's status line (``bot.status``)
        self.tasks: TaskCards | None = None  # reviewed calls as tasks, set by the flow
        self.repaint: Callable[[str], Awaitable[None]] | None = None
        """Paint a review as it now stands (set by the flow: ``ReviewEffects.repaint``)."""

    async def say(self, thread: SlackThread, text: str) -> None:
        await self.deps.slack.say(thread, text)

    async def bot_user_id(self) -> str | None:
        return await self.deps.slack.bot_user_id()

    # -- events --------------------------------------------------------------------------

    async def claim_event(self, event_id: str, body: dict[str, Any]) -> bool:
        return await self.events.claim_event(event_id, body)

    async def is_conversation(self, thread_id: str) -> bool:
        return await self.events.is_conversation(thread_id)

    async def finish_event(self, event_id: str) -> None:
        await self.events.finish_event(event_id)

    async def respond(
        self, body: dict[str, Any], bot_user_id: str | None, *, recovering: bool = False
    ) -> None:
        """Answer a claimed event, then mark it handled (the sweeper re-answers it otherwise).

        Slack's text encoding is undone here, once (`bot.mrkdwn.decode_incoming`)."""
        event = body["event"]
        thread = event_thread(event, body.get("team_id") or event.get("team"))
        text = decode_incoming(strip_mention(event.get("text") or "", bot_user_id))
        async with self.events.handling(body["event_id"]):  # a live handler is never replaced
            if not text.strip():
                await self.say(thread, HELLO)
            else:
                await self.converse(thread, event["user"], text, event["ts"], recovering=recovering)
        try:
            await self.events.finish_event(body["event_id"])
        except Exception:  # the sweeper will find it unfinished and look again (idempotently)
            log.warning("could not mark event %s handled", body["event_id"], exc_info=True)

    # -- conversations -------------------------------------------------------------------

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
        agent = self.deps.agent
        message_id = f"slack:{thread.channel_id}:{message_ts}"
        reacted = await self.status.working(thread, message_ts, user)
        outcome: RunOutcome | Refused | None = None
        try:
            await self.events.remember_conversation(
                thread.thread_id, thread.team_id, thread.channel_id, thread.thread_ts, user
            )
            context, stream = self.streamed_context(
                thread, user, await self.secrets_for(thread.thread_id), user
            )
            if recovering and await agent.has_message(thread.thread_id, message_id):
                outcome = await agent.resume_interrupted(
                    thread.thread_id, context=context
                ) or await agent.recap(thread.thread_id, after_message=message_id)
            else:
                with metrics.agent_run("turn"):
                    outcome = await agent.start_turn(
                        thread.thread_id, text, user=user, context=context, message_id=message_id
                    )
            await self.present(
                thread, outcome, recovering=recovering, requester=user, streamed=stream
            )
        except Exception as error:
            log.exception("turn failed in %s", thread.thread_id)
            await self.say(thread, explain(error))
        finally:
            await self.status.finished(
                thread,
                self.waiting_calls(thread, outcome),
                reacted_on=message_ts if reacted else None,
            )

    def waiting_calls(
        self, thread: SlackThread, outcome: RunOutcome | Refused | None
    ) -> list[CallPolicy]:
        """The policies of the reviews a run left waiting for a person (for the status)."""
        if not isinstance(outcome, RunOutcome):
            return []
        return self.waiting_of(thread, [review.request for review in outcome.pending])

    def waiting_of(
        self, thread: SlackThread, requests: Sequence[ReviewRequest]
    ) -> list[CallPolicy]:
        """The policies of ``requests`` that wait for a person (not run by an auto rule)."""
        calls = [
            self.deps.approvers.policy.for_call(
                request["tool_call"]["name"],
                request["tool_call"]["args"],
                requester=request.get("requested_by"),
                channel=thread.channel_id,
            )
            for request in requests
        ]
        return [call for call in calls if call.policy.mode != "auto"]

    async def present(
        self,
        thread: SlackThread,
        outcome: RunOutcome | Refused,
        *,
        recovering: bool = False,
        requester: str | None = None,
        streamed: SlackReplyStream | None = None,
    ) -> None:
        """Post what a run produced: tool results, the agent's reply, then new reviews.

        ``streamed``: the run's reply was streamed into the thread (``bot.streaming``); that
        message becomes the reply instead of a second one being posted.

        ``recovering``: the caller finishes what a stopped process started, so a review it
        registered but never showed is shown now, whatever its age. Calls that ran without
        review are recorded in the audit trail (``requester``: who asked), once each.
        """
        slack = self.deps.slack
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
        already = streamed.shown_results if streamed is not None else set()
        for result in outcome.tool_results:
            if result.tool_call_id not in already:  # shown while the run streamed
                await self._show_result(thread, result, secrets)
        if outcome.reply:
            reply = redaction.mask(outcome.reply, secrets)
            if streamed is None or not await streamed.show_reply(reply):
                await slack.post(thread, blocks.reply_blocks(reply), blocks.reply_text(reply))
        for review in outcome.pending:
            await self._post_review(thread, review.interrupt_id, review.request, recovering)

    async def _show_result(
        self, thread: SlackThread, result: ToolResult, secrets: frozenset[str]
    ) -> None:
        """One call's result card (or its failure, in plain words); a declined call has none."""
        if result.status == "error":
            await self._post_failure(thread, result, secrets)
        elif result.status != "declined":
            shown = dataclasses.replace(
                result,
                tool_name=self.shown_name(result.tool_name),
                content=redaction.mask(result.content, secrets),
            )
            body = [*blocks.tool_result_blocks(shown), *self._auto_receipt(result, secrets)]
            await self.deps.slack.post(thread, body, blocks.tool_result_text(shown))

    def streamed_context(
        self, thread: SlackThread, user: str | None, secrets: frozenset[str], requester: str | None
    ) -> tuple[AgentContext, SlackReplyStream | None]:
        """``Deps.streamed_context``, its stream showing each tool result as the run reports
        it (before the reply streams), exactly as :meth:`present` would show it."""
        context, stream = self.deps.streamed_context(thread, user, secrets)
        if stream is not None:

            async def show(result: ToolResult) -> bool:
                try:
                    await self._record_auto(thread, result, requester)  # once: idempotent
                    shown = RunOutcome(thread_id=thread.thread_id, tool_results=[result])
                    await self._show_result(
                        thread, result, await self.secrets_for(thread.thread_id, shown)
                    )
                except Exception:  # present() posts it after the run instead
                    log.warning("could not show a result in %s early", thread.thread_id)
                    return False
                return True

            stream.on_result = show
        return context, stream

    async def _post_failure(
        self, thread: SlackThread, result: ToolResult, secrets: frozenset[str]
    ) -> None:
        """A failed call in plain words (``graph.failure_words``); the tool's error text, with
        redacted values masked, goes to the log only."""
        name = self.shown_name(result.tool_name)
        log.warning(
            "tool %s failed in %s: %s",
            name,
            thread.thread_id,
            redaction.mask(result.content, secrets),
        )
        words = redaction.mask(failure_words(result.content), secrets)
        await self.deps.slack.post(
            thread,
            preview_blocks.failure_blocks(name, words),
            preview_blocks.failure_text(name, words),
        )

    @staticmethod
    def _auto_receipt(result: ToolResult, secrets: frozenset[str]) -> list[dict[str, Any]]:
        """What a call that ran without review did (it has no card to show it on): its
        receipt under its result. A reviewed call's receipt is on its decided card."""
        if result.auto_rule is None or result.receipt is None:
            return []
        return preview_blocks.receipt_blocks(result.receipt, posted_forms(secrets))

    def shown_name(self, tool_name: str) -> str:
        """The name people read: an MCP tool's ``server.tool``, not the model's
        ``server__tool`` (the review card shows the same)."""
        known = self.deps.agent.mcp_tools.get(tool_name)
        return known[0] if known else tool_name

    async def secrets_for(
        self, thread_id: str, outcome: RunOutcome | None = None
    ) -> frozenset[str]:
        """Every redacted value this thread's output could repeat: from the arguments the
        outcome's calls ran with and proposes, and from every review of the thread (so a call
        whose result does not carry its arguments, or a reply quoting an earlier call, is
        covered). The values are also handed to the log filter. Nothing is read when the
        policy redacts nothing."""
        if not redaction.redacts_anything(self.deps.approvers.policy):
            return frozenset()
        found: set[str] = set()

        def add(tool: str, args: Mapping[str, Any]) -> None:
            found.update(redaction.secret_values(args, self.deps.approvers.policy.redacts(tool)))

        for result in outcome.tool_results if outcome else ():
            add(result.tool_name, result.args)
        for pending in outcome.pending if outcome else ():
            add(pending.request["tool_call"]["name"], pending.request["tool_call"]["args"])
        for tool, argument_sets in await self.deps.storage.thread_arguments(thread_id):
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
        and a decision paints both.

        Where the card goes is decided before it is registered (``bot.routing``), and stored
        with it: a routed card is posted (or found again) in its channel, linked both ways
        with the conversation."""
        storage, slack = self.deps.storage, self.deps.slack
        call = self.deps.approvers.policy.for_call(
            request["tool_call"]["name"],
            request["tool_call"]["args"],
            requester=request.get("requested_by"),
            channel=thread.channel_id,
        )
        if call.policy.mode == "auto":
            await self._run_by_rule(thread, interrupt_id, request, call)
            return
        policy = call.policy
        route = await self.router.route(thread, request, call)
        link = await slack.permalink(thread.channel_id, thread.thread_ts) if route.channel else None
        ref = await storage.add_review(
            thread.thread_id,
            interrupt_id,
            thread.team_id,
            thread.channel_id,
            thread.thread_ts,
            request,
            ttl_seconds=policy.ttl_seconds,
            remind_before_seconds=policy.remind_before_seconds,
            # in the same statement: the trail has it before any click
            audit=requested_event(
                thread, interrupt_id, request, policy, call.label if call.has_rules else None
            ),
            policy_match=call.stored(),  # resolved once: every later step uses this rule
            card_channel=route.channel,
            conversation_link=link,
            escalate_after_seconds=policy.escalate_after_seconds,
            escalate_to=policy.escalate_to,
        )
        seen_before = ref is None
        if ref is not None and route.problem:
            await self.say(thread, route.problem)
        if ref is None:
            # Already registered: on screen (a sibling of the review just decided), or its
            # poster died before storing it, in which case it is shown now. A live run waits a
            # while first, so a sibling still being posted by this very run is not posted twice.
            ref = await storage.unposted_review(
                thread.thread_id, interrupt_id, older_than_seconds=0 if recovering else 30
            )
            registered = await storage.get(ref) if ref is not None else None
            if registered is not None:  # shown under the policy it was registered under
                call = self.deps.policy_of(registered)
                policy = call.policy
        if ref is None:
            return
        logs.remember_secrets(redaction.secret_values(request["tool_call"]["args"], policy.redact))
        since: str | None = None
        if seen_before:  # where its first poster meant to show it, and since when
            row = await storage.get(ref)
            route = dataclasses.replace(route, channel=row.card_channel if row else None)
            link = row.conversation_link if row else None
            if row is not None and row.created_at is not None:
                since = f"{row.created_at.timestamp() - 60:.6f}"  # a minute for clock skew
        routed = route.channel is not None
        ts = await slack.find_review_message(thread, ref) if seen_before and not routed else None
        standing = self.standing
        if (
            ts is None
            and standing is not None
            and await standing.run_granted(thread, ref, request, call)
        ):
            return  # a standing approval covered it: decided, nothing to review (nor routed)
        if route.channel is not None:
            await self._post_routed(thread, ref, request, route.channel, link, call, since)
            return
        if ts is None:
            shown = with_args(request, policy.redacted(request["tool_call"]["args"]))
            progress = Progress((), policy.quorum) if policy.quorum > 1 else None
            names = await slack.names.names_for(shown)
            ts = await slack.post(
                thread,
                blocks.review_blocks(
                    shown,
                    ref,
                    progress,
                    policy_line(call),
                    names=names,
                    grantable=policy.grants is not None,
                    preview=self._waiting_preview(request),
                ),
                blocks.review_fallback_text(request),
                metadata=review_metadata(ref),
            )
        if ts:
            await self._store_card(ref, ts)
            self._ask_preview(thread, ref, request)
            await self._open_task(thread, ref, request, thread.channel_id, ts)

    def _previews(self, request: ReviewRequest) -> bool:
        return self.deps.cards is not None and bool(request["tool"].get("preview"))

    def _waiting_preview(self, request: ReviewRequest) -> list[dict[str, Any]]:
        return preview_blocks.placeholder_blocks() if self._previews(request) else []

    def _ask_preview(self, thread: SlackThread, ref: str, request: ReviewRequest) -> None:
        """Asked only once the card is on screen, so its repaint finds the ts."""
        if self._previews(request) and self.deps.cards is not None:
            context = self.deps.context(thread, request.get("requested_by"))
            self.deps.cards.ask(
                ref, request["tool_call"]["name"], request["tool_call"]["args"], context
            )

    async def _run_by_rule(
        self, thread: SlackThread, interrupt_id: str, request: ReviewRequest, call: CallPolicy
    ) -> None:
        """A call whose policy rule says ``mode = "auto"`` runs without a person: the bot
        answers the agent's review itself (the agent asks for review of every call of a tool
        whose rules may want one: ``Policy.mode_rules``), records ``auto_approved`` with the
        rule, and posts what followed. Answered elsewhere already (a replayed outcome): the
        agent refuses the second answer and nothing more is done here."""
        requester = request.get("requested_by")
        args = request["tool_call"]["args"]
        logs.remember_secrets(redaction.secret_values(args, call.policy.redact))  # before it runs
        with metrics.agent_run("resume"):
            outcome = await self.deps.agent.answer(
                thread.thread_id,
                interrupt_id,
                Approve(None),
                context=self.deps.context(thread, requester),
            )
        if isinstance(outcome, Refused):
            log.info("auto-approval by rule of %s: %s", interrupt_id, outcome.reason)
            return
        event = audit_event(
            "auto_approved",
            thread.thread_id,
            interrupt_id,
            request,
            call.policy,
            detail=f"policy rule: {call.label}",
            channel_id=thread.channel_id,
        )
        await self.deps.append(event)
        await self.present(thread, outcome, requester=requester)

    async def _post_routed(
        self,
        thread: SlackThread,
        ref: str,
        request: ReviewRequest,
        channel: str,
        link: str | None,
        call: CallPolicy,
        shown_since: str | None = None,
    ) -> None:
        """Post a routed card in ``channel`` (linking the conversation), then tell the
        conversation where it waits (linking the card).

        ``shown_since``: the review may have been posted by a poster that died before storing
        it (since then): a card found in the channel is adopted instead (its pointer in the
        conversation was posted right after it, or is missing: the card, the App Home and
        ``/approvals`` still show the review)."""
        slack = self.deps.slack
        if shown_since is not None:
            found = await slack.find_channel_review(channel, ref, shown_since)
            if found is not None:
                await self._store_card(ref, found)
                return
        policy = call.policy
        shown = with_args(request, policy.redacted(request["tool_call"]["args"]))
        progress = Progress((), policy.quorum) if policy.quorum > 1 else None
        names = await slack.names.names_for(shown)
        card = blocks.review_blocks(
            shown,
            ref,
            progress,
            policy_line(call),
            names=names,
            grantable=policy.grants is not None,
            preview=self._waiting_preview(request),
        )
        body = with_conversation(card, link, thread.channel_id)
        ts = await slack.post_in_channel(
            channel, body, blocks.review_fallback_text(request), metadata=review_metadata(ref)
        )
        if ts is None:
            await self.say(
                thread,
                f"I could not post this review in <#{channel}> (is the bot a member?), so "
                "nobody can decide it, and it will expire.",
            )
            return
        await self._store_card(ref, ts)
        self._ask_preview(thread, ref, request)
        await self.say(thread, waits_in_text(channel, await slack.permalink(channel, ts)))
        await self._open_task(thread, ref, request, channel, ts)

    async def _store_card(self, ref: str, ts: str) -> None:
        """Record the card's message; if the review moved on while it was being posted (a
        decision from the Edit modal or the App Home, which do not name the message), the
        card is repainted as the review now stands, or it would keep its buttons."""
        if await self.deps.storage.add_copy(ref, ts) and self.repaint is not None:
            await self.repaint(ref)

    async def _open_task(
        self, thread: SlackThread, ref: str, request: ReviewRequest, channel: str, ts: str
    ) -> None:
        """The call as a task in the conversation, linked to its card (``bot.task_cards``)."""
        if self.tasks is not None:
            link = await self.deps.slack.permalink(channel, ts)
            await self.tasks.open(thread, ref, self.shown_name(request["tool_call"]["name"]), link)

    async def _record_auto(
        self, thread: SlackThread, result: ToolResult, requester: str | None
    ) -> None:
        """A call that ran without review: recorded with the rule that let it (once per call,
        however often its results are presented)."""
        if result.auto_rule is None:
            return
        policy = self.deps.policy(result.tool_name)
        # which rule the call met is not known here: mask what any of them redacts
        redact = self.deps.approvers.policy.redacts(result.tool_name)
        policy = dataclasses.replace(policy, redact=redact)
        await self.deps.append(auto_event(thread, result, requester, policy))
