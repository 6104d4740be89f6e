"""What every part of the review lifecycle works with, injected once by the composition root
(``bot.flow``): the agent (through its seam), the storage, Slack output, the approvers and the
audit trail."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot import logs, redaction
from bot.audit import AuditEvent, AuditLog
from bot.permissions import Approvers
from bot.policy import ToolPolicy
from bot.review.storage import ReviewStorage
from bot.slack_out import SlackOut
from bot.store import ReviewRow
from bot.threads import SlackThread
from graph import Agent, AgentContext

if TYPE_CHECKING:
    from bot.previews import CardExtras

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

    def policy(self, tool: str) -> ToolPolicy:
        return self.approvers.policy.for_tool(tool)

    def context(self, thread: SlackThread, user: str | None) -> AgentContext:
        """What the agent's tools may use: Slack (as the bot), who asked, which workspace."""
        return AgentContext(slack=self.slack.client, requester=user, team_id=thread.team_id)

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
        redact = self.policy(review.tool_name).redact
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
