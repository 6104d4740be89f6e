"""What every part of the review lifecycle works with, injected once by the composition root
(``bot.flow``): the agent (through its seam), the storage, Slack output, the approvers and the
audit trail."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot import logs, redaction
from bot.audit import AuditEvent, AuditLog
from bot.permissions import Approvers
from bot.policy import ToolPolicy
from bot.policy_rules import CallPolicy
from bot.review.storage import ReviewStorage
from bot.slack_out import SlackOut
from bot.store import ReviewRow
from bot.threads import SlackThread
from graph import Agent, AgentContext

if TYPE_CHECKING:
    from bot.previews import CardExtras
    from bot.streaming import ReplyStreams, SlackReplyStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    agent: Agent
    storage: ReviewStorage
    slack: SlackOut
    approvers: Approvers
    audit: AuditLog
    cards: CardExtras | None = None
    """Previews and receipts on the cards (``bot.previews``); None shows neither."""
    streams: ReplyStreams | None = None
    """Replies streamed as they are written (``bot.streaming``); None posts them whole."""

    def policy(self, tool: str) -> ToolPolicy:
        """A tool's own policy, before its rules: only where no one call is meant (a review
        has :meth:`policy_of`)."""
        return self.approvers.policy.for_tool(tool)

    def policy_of(self, review: ReviewRow, edit: Mapping[str, Any] | None = None) -> CallPolicy:
        """The one policy of a review, wherever it is asked for (card, clicks, modals, quorum,
        expiry, reminders, Home): the rule it was registered under (stored with the row), and,
        once its arguments were edited (``edit``: arguments about to be proposed; else the
        row's own edit), the rule of the edited arguments too, both applying
        (:func:`bot.policy_rules.conjoined`). Edited arguments are resolved at the review's
        creation time, so every step sees the same answer."""
        request = review.request
        return self.approvers.policy.for_review(
            review.tool_name,
            review.policy_match,
            request["tool_call"]["args"],
            edit if edit is not None else review.proposed_edit or review.edited_args,
            requester=request.get("requested_by"),
            channel=review.channel_id,
            created=review.created_at,
        )

    def context(self, thread: SlackThread, user: str | None) -> AgentContext:
        """What the agent's tools may use: Slack (as the bot), who asked, which workspace."""
        return AgentContext(slack=self.slack.client, requester=user, team_id=thread.team_id)

    def streamed_context(
        self, thread: SlackThread, user: str | None, secrets: frozenset[str]
    ) -> tuple[AgentContext, SlackReplyStream | None]:
        """:meth:`context` with a listener that streams the reply into ``thread`` (masking
        ``secrets``), when replies are streamed and the policy redacts nothing; the listener
        goes to ``Turns.present``."""
        context = self.context(thread, user)
        if self.streams is None or redaction.redacts_anything(self.approvers.policy):
            # Fail closed: a call that runs without review within the run (auto-approved by
            # the agent's own settings) could put a redacted value in the reply before the bot
            # knows it is one; the reply is then posted whole, masked, as before.
            return context, None
        stream = self.streams.open(thread, user, secrets)
        return dataclasses.replace(context, reply=stream), stream

    async def append(self, event: AuditEvent) -> None:
        """Append to the audit trail; a failure is logged, not raised: the decision itself is
        already safe in the review row."""
        try:
            await self.audit.record(event)
        except Exception:
            log.exception(
                "could not write the audit trail (%s on %s)", event.outcome, event.interrupt_id
            )

    def review_secrets(self, review: ReviewRow) -> frozenset[str]:
        """The redacted values of one review: as proposed, edited, or awaiting a quorum."""
        redact = self.policy_of(review).policy.redact
        sets: tuple[dict[str, Any] | None, ...] = (
            review.request["tool_call"]["args"],
            review.edited_args,
            review.proposed_edit,
        )
        return frozenset().union(
            *(redaction.secret_values(args, redact) for args in sets if args is not None)
        )

    def remember_secrets(self, review: ReviewRow) -> None:
        """Hand a review's redacted values to the log filter (before its tool runs and logs)."""
        logs.remember_secrets(self.review_secrets(review))


def thread_of(review: ReviewRow) -> SlackThread:
    return SlackThread(review.team_id, review.channel_id, review.thread_ts)
