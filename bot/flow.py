"""The composition root of the conversation and review flow: every part built once, in order,
each handed what it needs. Read top to bottom:

1. Slack output (:class:`bot.slack_out.SlackOut`) over the Web API client;
2. the shared collaborators (:class:`bot.review.deps.Deps`): the agent through its seam
   (:class:`graph.Agent`), the review storage (:class:`bot.store.BotStore`), the approvers,
   the audit trail, the cards' previews and receipts (:class:`bot.previews.CardExtras`, whose
   finished previews repaint through the effects);
3. conversations (:class:`bot.turns.Turns`): messages become agent turns, outcomes messages;
4. the review's effects (:class:`bot.review.effects.ReviewEffects`): apply, release, recover,
   expire, remind, repaint;
5. clicks (:class:`bot.review.clicks.Clicks`): what a button press or modal submit does;
6. the App Home / ``/approvals`` lister (:class:`bot.waiting.WaitingLister`);
7. standing approvals (:class:`bot.review.standing.StandingApprovals`), handed to
   conversations (a proposed call a grant covers runs without a review) and to clicks (an
   approval may create one).

Listeners (``bot.listeners``) get the part they serve; the sweeper (``bot.sweeper``) gets the
flow. Nothing here behaves: it only wires.
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import AuditLog
from bot.failures import BROKEN, BUSY, DB_DOWN, MODEL_DOWN, explain
from bot.grants import GrantStore
from bot.permissions import Approvers
from bot.previews import CardExtras
from bot.reply_streams import StreamRecords
from bot.review.clicks import FOUR_EYES, Clicks
from bot.review.deps import Deps
from bot.review.effects import Click, ReviewEffects
from bot.review.standing import StandingApprovals
from bot.routing import ChannelDirectory, Router
from bot.slack_out import SlackOut
from bot.store import BotStore
from bot.streaming import ReplyStreams
from bot.task_cards import TaskCards
from bot.threads import SlackThread
from bot.turns import Turns
from bot.waiting import WaitingLister
from graph import Agent, Refused, RunOutcome

__all__ = [
    "BROKEN",
    "BUSY",
    "DB_DOWN",
    "FOUR_EYES",
    "MODEL_DOWN",
    "Click",
    "ReviewFlow",
    "explain",
]


class ReviewFlow:
    """Every part of the flow, wired. ``service``: the agent, through its seam."""

    def __init__(
        self,
        service: Agent,
        store: BotStore,
        client: AsyncWebClient,
        approvers: Approvers,
        *,
        stream_replies: bool = True,
        task_cards: bool = True,
    ) -> None:
        self.service = service
        self.store = store
        self.client = client
        self.approvers = approvers
        self.audit = AuditLog(store.pool)
        self.slack = SlackOut(client)
        self.cards = CardExtras(store.pool, service)
        self.streams = ReplyStreams(client, StreamRecords(store.pool))
        deps = Deps(
            service,
            store,
            self.slack,
            approvers,
            self.audit,
            self.cards,
            self.streams if stream_replies else None,
        )
        self.router = Router(ChannelDirectory(client), approvers)
        self.turns = Turns(deps, store, self.router)
        self.effects = ReviewEffects(deps, self.turns)
        self.cards.on_ready = self.effects.refresh_preview
        self.turns.repaint = self.effects.repaint
        self.clicks = Clicks(deps, self.effects)
        self.lister = WaitingLister(store, client, approvers)
        self.standing = StandingApprovals(
            deps, self.effects, self.clicks, GrantStore(store.pool), self.lister.audience
        )
        self.turns.standing = self.clicks.standing = self.standing
        self.turns.tasks = TaskCards(client, store.pool) if task_cards else None

    async def present(
        self,
        thread: SlackThread,
        outcome: RunOutcome | Refused,
        *,
        recovering: bool = False,
        requester: str | None = None,
    ) -> None:
        """Post what a run produced (see :meth:`bot.turns.Turns.present`)."""
        await self.turns.present(thread, outcome, recovering=recovering, requester=requester)
