"""Background upkeep that makes decisions durable, run by every replica.

Each pass (0) answers messages whose handler died after Slack saw them acknowledged, (1)
finishes decisions whose process died between the claim and the result, (2) expires reviews
nobody decided within their time to live (failing closed), (3) escalates reviews still
undecided after their ``escalate_after`` (pinging ``escalate_to``, who may decide from then on),
(4) posts reminders before expiry, (4b) stops streamed replies a dead process left open
(``bot.reply_streams``), (5) repaints messages Slack refused to update, and (6), when
a retention is set, deletes idle conversations and old event claims (at most hourly,
``bot.retention``). Every step claims its rows atomically in PostgreSQL, so replicas never do
the same work twice. "Died" is judged by a
heartbeat, not by age: whoever works on a claimed event or decision refreshes it (see
``BotStore.handling`` and ``BotStore.deciding``), so a live process waiting on a slow model is
never taken over, however long it takes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.flow import ReviewFlow
from bot.retention import RetentionTask
from bot.streaming import close_stale

log = logging.getLogger(__name__)

STUCK_AFTER_SECONDS = 90.0  # silence after which a claim's worker is taken for dead


@dataclass
class SweepReport:
    reanswered: int = 0
    recovered: int = 0
    expired: int = 0
    escalated: int = 0
    reminded: int = 0
    repainted: int = 0
    pruned: int = 0
    streams_closed: int = 0


async def sweep_once(
    flow: ReviewFlow,
    *,
    stuck_after: float = STUCK_AFTER_SECONDS,
    retention: RetentionTask | None = None,
) -> SweepReport:
    report = SweepReport()
    # What is taken over keeps beating while it waits its turn, so no other replica takes it
    # over again meanwhile.
    store, turns, effects = flow.store, flow.turns, flow.effects
    stale = await store.stale_events(stuck_after)
    async with store.handling(*(body["event_id"] for body in stale)):
        for body in stale:
            log.warning("answering event %s left unanswered by a stopped process", body["event_id"])
            await turns.respond(body, await turns.bot_user_id(), recovering=True)
            report.reanswered += 1
    stuck = await store.take_over(stuck_after)
    async with store.deciding(*(review.ref for review in stuck)):
        for review in stuck:
            log.warning("finishing decision %s left unfinished by a stopped process", review.ref)
            await effects.apply(review)
            report.recovered += 1
    for review in await store.due_for_expiry():
        await effects.expire(review)
        report.expired += 1
    for review in await store.escalate():  # transition escalate: one replica each
        await effects.escalate(review)
        report.escalated += 1
    for review in await store.remind_due():  # transition remind: one replica each
        await effects.remind(review)
        report.reminded += 1
    report.streams_closed = await close_stale(flow.client, flow.streams.records, stuck_after)
    for review in await store.unsynced():
        await effects.sync(review)
        report.repainted += 1
    if retention is not None and (pruned := await retention.run_due(store.pool, flow.service)):
        report.pruned = len(pruned.conversations)
    return report


async def run_sweeper(
    flow: ReviewFlow,
    every: float,
    stuck_after: float = STUCK_AFTER_SECONDS,
    retention: RetentionTask | None = None,
) -> None:
    """Sweep forever; an outage only delays the next pass."""
    while True:
        try:
            await sweep_once(flow, stuck_after=stuck_after, retention=retention)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("sweep failed; retrying in %ss", every, exc_info=True)
        await asyncio.sleep(every)
