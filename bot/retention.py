"""Retention: conversations idle longer than ``RETENTION_DAYS`` are deleted, everywhere.

A conversation's *last activity* is the latest of: when the bot first saw it
(``slack_conversations.created_at``), when any of its reviews was registered or decided, and
when the agent last wrote its state (its latest checkpoint, asked through the seam:
:meth:`graph.seam.Agent.last_activity`). A conversation idle longer than the cut loses its
agent state (checkpoints, chunks, decisions: :meth:`graph.seam.Agent.delete_threads`, the bot
never touches the agent's tables), its review rows and their approvals, and its conversation
row. A conversation with a review still pending or deciding is never pruned, however old.

Event claims (``slack_events``) are keyed by Slack's event id, not by conversation: they are
aged out by their own age (claimed and last heard of before the cut).

Standing approvals (``bot.grants``) go by their own ends: a grant that expired or was revoked
before the cut is deleted (an active one never is, however old; a grant whose uses ran out is
kept until its expiry passes the cut, as the table does not say when its last use was taken).
An approver's offered terms (``standing_grant_offers``) go once they are older than the cut and
their review is decided or gone. The audit trail keeps each grant's ``grant_created`` and
``grant_revoked`` events either way.

The audit trail is kept unless ``AUDIT_RETENTION_DAYS`` is set. Its table refuses DELETE (a
trigger); the one sanctioned path is :meth:`Pruner.prune_audit`, which declares the cut in a
transaction-local setting (``bot.audit_prune_before``) that the trigger honours for rows older
than the cut only, and records each cut (ids, count, last time; per workspace, the range of the
hash chain removed and the hashes at its ends) in ``audit_cuts`` in the same transaction, so
what is missing from the trail is itself on record and ``audit verify`` still passes. The
setting guards against accidents, not against a database owner, who can drop the trigger
anyway.

Every step works in bounded batches, each its own short transaction; conversations are claimed
with ``FOR UPDATE SKIP LOCKED``, so replicas pruning at once take disjoint batches and every
row is deleted (and counted) once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, LiteralString

from graph import Agent
from graph.db import Pool

log = logging.getLogger(__name__)

BATCH = 100
"""Conversations (or events, or audit rows times ten) per transaction: small enough that no
lock is held for long."""

PRUNE_EVERY_SECONDS = 3600.0
"""How often a replica's sweeper runs a retention pass (when a retention is set)."""

_AGE = re.compile(r"^\s*(\d+)\s*([dh]?)\s*$")


class RetentionError(ValueError):
    """An age that cannot be read, named so the operator can fix it."""


def parse_age(text: str, name: str = "age") -> timedelta:
    """``90d`` or ``90`` (days), ``12h`` (hours); at least one hour."""
    match = _AGE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise RetentionError(
            f"{name} must be a number of days (90, 90d) or hours (12h), not {text!r}"
        )
    amount = int(match.group(1))
    return timedelta(hours=amount) if match.group(2) == "h" else timedelta(days=amount)


@dataclass(frozen=True)
class Retention:
    """How long conversations and the audit trail are kept; None: forever."""

    conversations: timedelta | None = None
    audit: timedelta | None = None

    @property
    def enabled(self) -> bool:
        return self.conversations is not None or self.audit is not None


def retention_from_env(env: Mapping[str, str]) -> Retention:
    """``RETENTION_DAYS`` and ``AUDIT_RETENTION_DAYS`` (unset or empty: keep forever)."""

    def days(name: str) -> timedelta | None:
        raw = env.get(name, "").strip()
        if not raw:
            return None
        if not raw.isascii() or not raw.isdigit() or int(raw) == 0:
            raise RetentionError(
                f"{name} must be a whole number of days (unset: keep), not {raw!r}"
            )
        return timedelta(days=int(raw))

    return Retention(days("RETENTION_DAYS"), days("AUDIT_RETENTION_DAYS"))


@dataclass
class PruneReport:
    """What a pass deleted (or, dry, would delete)."""

    dry_run: bool = False
    conversations: list[str] = field(default_factory=list)
    reviews: int = 0
    approvals: int = 0
    events: int = 0
    audit_events: int = 0
    grants: int = 0
    grant_offers: int = 0

    def lines(self, show: int = 20) -> list[str]:
        verb = "would delete" if self.dry_run else "deleted"
        shown = self.conversations[:show]
        more = len(self.conversations) - len(shown)
        return [
            f"{verb} {len(self.conversations)} conversation(s) (agent state, reviews, approvals)",
            *(f"  {thread_id}" for thread_id in shown),
            *([f"  ... and {more} more"] if more else []),
            f"{verb} {self.reviews} review(s), {self.approvals} approval(s)",
            f"{verb} {self.events} event claim(s)",
            f"{verb} {self.grants} standing approval(s), {self.grant_offers} offer(s)",
            f"{verb} {self.audit_events} audit event(s)",
        ]


_CANDIDATES_SQL: LiteralString = """
    SELECT c.thread_id, c.created_at FROM slack_conversations c
    WHERE c.created_at < %(cut)s
      AND (c.created_at, c.thread_id) > (%(after_at)s, %(after_id)s)
      AND NOT EXISTS (
          SELECT 1 FROM slack_reviews r WHERE r.thread_id = c.thread_id
            AND (r.status <> 'decided' OR r.created_at >= %(cut)s OR r.decided_at >= %(cut)s))
    ORDER BY c.created_at, c.thread_id LIMIT %(limit)s
"""
"""Conversations first seen before the cut with no review pending, deciding or active since,
oldest first, from a cursor (so conversations kept for their agent activity are not looked
at again in the same pass)."""

_CLAIM_CANDIDATES_SQL: LiteralString = _CANDIDATES_SQL + " FOR UPDATE OF c SKIP LOCKED"

_COUNT_OF_SQL: LiteralString = """
    SELECT count(*) AS reviews,
           (SELECT count(*) FROM slack_review_approvals a JOIN slack_reviews r USING (ref)
            WHERE r.thread_id = ANY (%(ids)s)) AS approvals
    FROM slack_reviews WHERE thread_id = ANY (%(ids)s)
"""
_DELETE_APPROVALS_SQL: LiteralString = """
    DELETE FROM slack_review_approvals WHERE ref = ANY (ARRAY (
        SELECT ref FROM slack_reviews WHERE thread_id = ANY (%(ids)s) AND status = 'decided'))
"""
_DELETE_REVIEWS_SQL: LiteralString = (
    "DELETE FROM slack_reviews WHERE thread_id = ANY (%(ids)s) AND status = 'decided'"
)
_DELETE_CONVERSATIONS_SQL: LiteralString = (
    "DELETE FROM slack_conversations WHERE thread_id = ANY (%(ids)s)"
)

_OLD_EVENTS: LiteralString = """
    SELECT event_id FROM slack_events
    WHERE claimed_at < %(cut)s AND COALESCE(heartbeat_at, claimed_at) < %(cut)s
"""
_COUNT_EVENTS_SQL: LiteralString = f"SELECT count(*) AS n FROM ({_OLD_EVENTS}) old"
_DELETE_EVENTS_SQL: LiteralString = f"""
    DELETE FROM slack_events WHERE event_id = ANY (ARRAY (
        {_OLD_EVENTS} ORDER BY claimed_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
"""

_OLD_GRANTS: LiteralString = """
    SELECT id FROM standing_grants WHERE revoked_at < %(cut)s OR expires_at < %(cut)s
"""
"""Grants that ended before the cut (expired, or revoked): an active grant has neither."""
_COUNT_GRANTS_SQL: LiteralString = f"SELECT count(*) AS n FROM ({_OLD_GRANTS}) old"
_DELETE_GRANTS_SQL: LiteralString = f"""
    DELETE FROM standing_grants WHERE id = ANY (ARRAY (
        {_OLD_GRANTS} ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
"""
_OLD_OFFERS: LiteralString = """
    SELECT o.ctid FROM standing_grant_offers o
    WHERE o.at < %(cut)s AND NOT EXISTS (
        SELECT 1 FROM slack_reviews r WHERE r.ref = o.ref AND r.status <> 'decided')
"""
"""Offers older than the cut whose review is decided or gone (a pending or deciding review
may still create its grant from them)."""
_COUNT_OFFERS_SQL: LiteralString = f"SELECT count(*) AS n FROM ({_OLD_OFFERS}) old"
_DELETE_OFFERS_SQL: LiteralString = f"""
    DELETE FROM standing_grant_offers WHERE ctid = ANY (ARRAY (
        {_OLD_OFFERS} LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED))
"""

_COUNT_AUDIT_SQL: LiteralString = "SELECT count(*) AS n FROM audit_events WHERE at < %(cut)s"
_DECLARE_AUDIT_CUT_SQL: LiteralString = (
    "SELECT set_config('bot.audit_prune_before', %(cut)s::timestamptz::text, true)"
)
_DELETE_AUDIT_SQL: LiteralString = """
    WITH gone AS (
        DELETE FROM audit_events WHERE id = ANY (ARRAY (
            SELECT id FROM audit_events WHERE at < %(cut)s
            ORDER BY at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
        RETURNING id, at, workspace, chain_seq, prev_hash, hash),
    cuts AS (
        INSERT INTO audit_cuts (cut_before, deleted, first_id, last_id, last_at, workspace,
                                first_seq, first_prev_hash, last_seq, last_hash)
        SELECT %(cut)s, count(*), min(id), max(id), max(at), workspace, min(chain_seq),
            (array_agg(prev_hash ORDER BY chain_seq))[1], max(chain_seq),
            (array_agg(hash ORDER BY chain_seq DESC))[1]
        FROM gone GROUP BY workspace
        RETURNING deleted)
    SELECT COALESCE(sum(deleted), 0) AS deleted FROM cuts
"""
"""One batch of the cut, recorded per workspace: the range of the chain it removed, the hash
before its first event and the hash of its last, so ``audit verify`` steps over exactly that
range (``bot.audit_chain``). Along a chain time only moves forward (the chain's trigger stamps
it), so the oldest events are a prefix of each chain."""

PRUNE_SQL: dict[str, LiteralString] = {
    "candidates": _CLAIM_CANDIDATES_SQL,
    "approvals": _DELETE_APPROVALS_SQL,
    "reviews": _DELETE_REVIEWS_SQL,
    "conversations": _DELETE_CONVERSATIONS_SQL,
    "events": _DELETE_EVENTS_SQL,
    "grants": _DELETE_GRANTS_SQL,
    "grant_offers": _DELETE_OFFERS_SQL,
    "audit": _DELETE_AUDIT_SQL,
}
"""The statements a retention pass runs, by name; ``tests/test_query_plans.py`` checks that each
uses an index. The batches are chosen into an array (``= ANY (ARRAY (...))``) rather than
joined (``IN (...)``): a join of a thousand ids may be planned as a hash join over the whole
table, an array is looked up through the primary key."""

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


class Pruner:
    """Deletes what is older than a cut, in batches; see the module's docstring."""

    def __init__(self, pool: Pool, agent: Agent, *, batch: int = BATCH) -> None:
        self.pool = pool
        self.agent = agent
        self.batch = batch

    async def cut(self, age: timedelta) -> datetime:
        """``age`` before now, by the database's clock (the one the rows were stamped by)."""
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT now() - %s::interval AS cut", (age,))
            ).fetchone()
        assert row is not None
        cut: datetime = row["cut"]
        return cut

    async def prune(
        self,
        older_than: timedelta | None,
        *,
        audit_older_than: timedelta | None = None,
        dry_run: bool = False,
    ) -> PruneReport:
        report = PruneReport(dry_run=dry_run)
        if older_than is not None:
            cut = await self.cut(older_than)
            await self._conversations(cut, report)
            await self._events(cut, report)
            await self._grants(cut, report)
        if audit_older_than is not None:
            await self.prune_audit(await self.cut(audit_older_than), report)
        return report

    async def _idle(self, rows: Sequence[dict[str, Any]], cut: datetime) -> list[str]:
        ids = [str(row["thread_id"]) for row in rows]
        activity = await self.agent.last_activity(ids) if ids else {}
        return [t for t in ids if t not in activity or activity[t] < cut]

    async def _conversations(self, cut: datetime, report: PruneReport) -> None:
        after: tuple[datetime, str] = (_EPOCH, "")
        while True:
            params = {"cut": cut, "after_at": after[0], "after_id": after[1], "limit": self.batch}
            async with self.pool.connection() as conn, conn.transaction():
                sql = _CANDIDATES_SQL if report.dry_run else _CLAIM_CANDIDATES_SQL
                rows = await (await conn.execute(sql, params)).fetchall()
                if not rows:
                    return
                after = (rows[-1]["created_at"], str(rows[-1]["thread_id"]))
                idle = await self._idle(rows, cut)
                if not report.dry_run:
                    idle = await self.agent.delete_threads(idle, idle_before=cut) if idle else []
                await self._delete_bot_rows(conn, idle, report)
            if len(rows) < self.batch:
                return

    async def _delete_bot_rows(self, conn: Any, ids: list[str], report: PruneReport) -> None:
        if not ids:
            return
        report.conversations.extend(ids)
        if report.dry_run:
            counts = await (await conn.execute(_COUNT_OF_SQL, {"ids": ids})).fetchone()
            report.reviews += counts["reviews"]
            report.approvals += counts["approvals"]
            return
        report.approvals += (await conn.execute(_DELETE_APPROVALS_SQL, {"ids": ids})).rowcount
        report.reviews += (await conn.execute(_DELETE_REVIEWS_SQL, {"ids": ids})).rowcount
        await conn.execute(_DELETE_CONVERSATIONS_SQL, {"ids": ids})

    async def _events(self, cut: datetime, report: PruneReport) -> None:
        if report.dry_run:
            report.events += await self._count(_COUNT_EVENTS_SQL, cut)
            return
        report.events += await self._batches(_DELETE_EVENTS_SQL, cut)

    async def _grants(self, cut: datetime, report: PruneReport) -> None:
        """Ended grants and settled offers (see the module's docstring)."""
        if report.dry_run:
            report.grants += await self._count(_COUNT_GRANTS_SQL, cut)
            report.grant_offers += await self._count(_COUNT_OFFERS_SQL, cut)
            return
        report.grants += await self._batches(_DELETE_GRANTS_SQL, cut)
        report.grant_offers += await self._batches(_DELETE_OFFERS_SQL, cut)

    async def _batches(self, delete: LiteralString, cut: datetime) -> int:
        """``delete`` (one batch of rows older than ``cut``, taken ``SKIP LOCKED``) until a
        batch comes back short; how many rows were deleted."""
        total, limit = 0, self.batch * 10
        while True:
            async with self.pool.connection() as conn:
                deleted = (await conn.execute(delete, {"cut": cut, "limit": limit})).rowcount
            total += deleted
            if deleted < limit:
                return total

    async def prune_audit(self, cut: datetime, report: PruneReport) -> None:
        """The sanctioned deletion of audit events older than ``cut``, each batch recorded
        in ``audit_cuts`` in its own transaction."""
        if report.dry_run:
            report.audit_events += await self._count(_COUNT_AUDIT_SQL, cut)
            return
        params = {"cut": cut, "limit": self.batch * 10}
        while True:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(_DECLARE_AUDIT_CUT_SQL, params)
                row = await (await conn.execute(_DELETE_AUDIT_SQL, params)).fetchone()
            deleted = 0 if row is None else int(row["deleted"])
            report.audit_events += deleted
            if deleted < self.batch * 10:
                return

    async def _count(self, sql: LiteralString, cut: datetime) -> int:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(sql, {"cut": cut})).fetchone()
        return 0 if row is None else int(row["n"])


class RetentionTask:
    """The sweeper's retention: a pass at most every :data:`PRUNE_EVERY_SECONDS` per replica
    (replicas passing at once share the work, see :class:`Pruner`)."""

    def __init__(self, retention: Retention, every_seconds: float = PRUNE_EVERY_SECONDS) -> None:
        self.retention = retention
        self.every_seconds = every_seconds
        self._last: float | None = None

    async def run_due(self, pool: Pool, agent: Agent) -> PruneReport | None:
        now = time.monotonic()
        if not self.retention.enabled or (
            self._last is not None and now - self._last < self.every_seconds
        ):
            return None
        self._last = now
        report = await Pruner(pool, agent).prune(
            self.retention.conversations, audit_older_than=self.retention.audit
        )
        if (
            report.conversations
            or report.events
            or report.audit_events
            or report.grants
            or report.grant_offers
        ):
            log.info("retention: %s", "; ".join(report.lines(show=0)))
        return report
