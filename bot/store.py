"""The bot's own tables: which Slack message shows which review, and which events were seen.

Button values carry only ``ref``, a random token; everything else is looked up here, so a
tampered value finds nothing. The ``status`` column (pending -> deciding -> decided) is the
fast path that lets exactly one of many simultaneous clicks proceed, across replicas; the agent
service re-checks under its thread lease anyway. Every statement that changes a review is named
by its transition (:data:`TRANSITION_SQL`) and checked against the one table of
``bot.review.states`` on import. A decision is stored with its claim, so if the
process dies before applying it, any replica's sweeper can finish the job.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
import psycopg_pool
from psycopg.types.json import Json, Jsonb

from bot.audit import AUDIT_TABLE, INSERT_COLUMNS, TYPED_VALUES, AuditEvent, insert_params
from bot.review.states import TransitionName, check_sql
from graph import ReviewRequest
from graph.db import Pool
from graph.decisions import (
    Approve,
    Edit,
    Expire,
    Feedback,
    ReviewDecision,
    from_stored,
    stored_action,
)

log = logging.getLogger(__name__)

STALE_EVENT_SECONDS = 120

_LIVE: LiteralString = "(expires_at IS NULL OR expires_at > now())"
"""A review whose time has not run out. Every statement that claims or approves a review
carries it, so an expired review is refused in the very statement that would decide it."""

_LAPSED: LiteralString = (
    "(action IS DISTINCT FROM 'expired' AND expires_at IS NOT NULL AND expires_at <= now())"
)

_GUARDED_SQL: LiteralString = """
    WITH changed AS ({change} RETURNING *)
    SELECT changed.*, true AS changed, false AS lapsed FROM changed
    UNION ALL
    SELECT r.*, false, COALESCE(r.status = 'pending' AND r.expires_at <= now(), false)
    FROM slack_reviews r WHERE r.ref = %s AND NOT EXISTS (SELECT 1 FROM changed)
"""
"""A guarded change and, when it changed nothing, why, read in the same statement."""

_FINISH_SQL: LiteralString = """
    UPDATE slack_reviews SET status = 'decided', action = COALESCE(%s, action),
        decided_by = COALESCE(%s, decided_by), decided_at = COALESCE(%s, decided_at)
    WHERE ref = %s AND status <> 'decided'
"""
_FINISH_AND_AUDIT_SQL: LiteralString = (
    f"WITH settled AS ({_FINISH_SQL} RETURNING ref) "
    f"INSERT INTO {AUDIT_TABLE} ({INSERT_COLUMNS}) SELECT {TYPED_VALUES} FROM settled"
)
"""Settle a review and append its decision event, once: a review already settled (by a
process that only seemed dead) gets no second event."""

_ADD_REVIEW_SQL: LiteralString = """
    INSERT INTO slack_reviews (ref, thread_id, interrupt_id, team_id, channel_id,
                               thread_ts, tool_name, request, expires_at, remind_at,
                               policy_match, card_channel, conversation_link, escalate_at,
                               escalate_to)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s,
            now() + make_interval(secs => %s), now() + make_interval(secs => %s), %s,
            %s, %s, now() + make_interval(secs => %s), %s)
    ON CONFLICT (thread_id, interrupt_id) DO NOTHING
"""
_CLAIM_SET: LiteralString = """
    UPDATE slack_reviews
    SET status = 'deciding', action = %s, decided_by = %s, decided_at = now(),
        edited_args = %s, feedback = %s, args_digest = %s, decision_detail = %s
    WHERE ref = %s AND status = 'pending' AND """
_CLAIM_SQL: LiteralString = _CLAIM_SET + _LIVE
"""A person's claim: only on a live review, checked in the claiming statement."""
_CLAIM_EXPIRY_SQL: LiteralString = _CLAIM_SET + "NOT " + _LIVE
"""The clock's claim: only on a review whose time ran out, by the database's clock."""

_RELEASE_SQL: LiteralString = """
    UPDATE slack_reviews SET status = 'pending', action = NULL, decided_by = NULL,
        decided_at = NULL, edited_args = NULL, feedback = NULL, args_digest = NULL,
        decision_detail = NULL
    WHERE ref = %s AND status = 'deciding' RETURNING ref
"""
_PROPOSE_EDIT_SQL: LiteralString = f"""
    UPDATE slack_reviews SET proposed_edit = %s, proposed_by = %s, version = version + 1
    WHERE ref = %s AND status = 'pending' AND version = %s AND {_LIVE}
"""
_APPROVE_SQL: LiteralString = f"""
    WITH live AS (
        SELECT ref FROM slack_reviews
        WHERE ref = %s AND status = 'pending' AND version = %s AND {_LIVE} FOR SHARE),
    added AS (
        INSERT INTO slack_review_approvals (ref, version, user_id, args_digest)
        SELECT ref, %s, %s, %s FROM live ON CONFLICT DO NOTHING)
    SELECT r.*, EXISTS (SELECT 1 FROM live) AS live,
        COALESCE(r.status = 'pending' AND r.expires_at <= now(), false)
            AS lapsed
    FROM slack_reviews r WHERE r.ref = %s
"""
_VOTES_SQL: LiteralString = (
    "SELECT user_id FROM slack_review_approvals WHERE ref = %s AND version = %s "
    "AND args_digest IS NOT DISTINCT FROM %s ORDER BY at, user_id"
)
"""The votes that count together: same version, same digest (an unbound vote, from before
digests, counts only with other unbound ones)."""
_REMIND_SQL: LiteralString = """
    UPDATE slack_reviews SET reminded_at = now()
    WHERE ref IN (
        SELECT ref FROM slack_reviews
        WHERE status = 'pending' AND reminded_at IS NULL AND remind_at < now()
        ORDER BY remind_at LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING *
"""
_ESCALATE_SQL: LiteralString = f"""
    UPDATE slack_reviews SET escalated_at = now()
    WHERE ref IN (
        SELECT ref FROM slack_reviews
        WHERE status = 'pending' AND escalated_at IS NULL AND escalate_at < now() AND {_LIVE}
        ORDER BY escalate_at LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING *
"""
"""Claim due escalations: one replica each, only for a review still undecided and live."""
_ADD_COPY_SQL: LiteralString = """
    UPDATE slack_reviews SET message_ts = COALESCE(message_ts, %s),
        message_copies = CASE WHEN %s = ANY (message_copies) THEN message_copies
                              ELSE array_append(message_copies, %s) END
    WHERE ref = %s
    RETURNING status <> 'pending' OR version > 0 OR proposed_edit IS NOT NULL
        OR EXISTS (SELECT 1 FROM slack_review_approvals a WHERE a.ref = slack_reviews.ref)
        AS moved_on
"""
"""``moved_on``: something happened to the review that a card painted as just registered does
not show (a decision, an edit, a vote)."""
_MARK_REPAINT_SQL: LiteralString = (
    "UPDATE slack_reviews SET needs_sync = %s WHERE ref = %s RETURNING ref"
)
_BEAT_SQL: LiteralString = (
    "UPDATE slack_reviews SET heartbeat_at = now() WHERE ref = ANY (%s) AND status = 'deciding'"
)
_TAKE_OVER_SQL: LiteralString = f"""
    UPDATE slack_reviews SET heartbeat_at = now(),
        decided_at = CASE WHEN {_LAPSED} THEN now() ELSE decided_at END,
        action = CASE WHEN {_LAPSED} THEN 'expired' ELSE action END,
        decided_by = CASE WHEN {_LAPSED} THEN NULL ELSE decided_by END,
        edited_args = CASE WHEN {_LAPSED} THEN NULL ELSE edited_args END,
        feedback = CASE WHEN {_LAPSED} THEN NULL ELSE feedback END
    WHERE ref IN (
        SELECT ref FROM slack_reviews
        WHERE status = 'deciding'
          AND GREATEST(decided_at, heartbeat_at) < now() - make_interval(secs => %s)
        ORDER BY decided_at LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING *
"""

_STALE_EVENTS_SQL: LiteralString = """
    UPDATE slack_events SET heartbeat_at = now()
    WHERE event_id IN (
        SELECT event_id FROM slack_events
        WHERE status = 'handling' AND body IS NOT NULL
          AND GREATEST(claimed_at, heartbeat_at) < now() - make_interval(secs => %s)
        ORDER BY claimed_at LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING body
"""
_DUE_SQL: LiteralString = (
    "SELECT * FROM slack_reviews WHERE status = 'pending' AND expires_at < now() "
    "ORDER BY expires_at LIMIT %s"
)
_UNSYNCED_SQL: LiteralString = (
    "SELECT * FROM slack_reviews WHERE needs_sync AND status <> 'deciding' LIMIT %s"
)
SWEEPER_SQL: dict[str, tuple[LiteralString, tuple[Any, ...]]] = {
    "stale_events": (_STALE_EVENTS_SQL, (120, 20)),
    "take_over": (_TAKE_OVER_SQL, (90, 50)),
    "due_for_expiry": (_DUE_SQL, (50,)),
    "remind_due": (_REMIND_SQL, (50,)),
    "escalate": (_ESCALATE_SQL, (50,)),
    "unsynced": (_UNSYNCED_SQL, (50,)),
}
"""Every query of a sweeper pass, with the parameters it runs with (each must use an index:
``tests/test_query_plans.py``)."""

_ADD_REVIEW_AND_AUDIT_SQL: LiteralString = (
    f"WITH added AS ({_ADD_REVIEW_SQL} RETURNING ref) "
    f"INSERT INTO {AUDIT_TABLE} ({INSERT_COLUMNS}) SELECT {TYPED_VALUES} FROM added "
    "RETURNING (SELECT ref FROM added) AS ref"
)

TRANSITION_SQL: dict[TransitionName, tuple[LiteralString, ...]] = {
    "register": (_ADD_REVIEW_SQL,),
    "claim": (_CLAIM_SQL,),
    "claim_expiry": (_CLAIM_EXPIRY_SQL,),
    "approve": (_APPROVE_SQL,),
    "propose_edit": (_PROPOSE_EDIT_SQL,),
    "remind": (_REMIND_SQL,),
    "escalate": (_ESCALATE_SQL,),
    "add_copy": (_ADD_COPY_SQL,),
    "mark_repaint": (_MARK_REPAINT_SQL,),
    "release": (_RELEASE_SQL,),
    "beat": (_BEAT_SQL,),
    "take_over": (_TAKE_OVER_SQL,),
    "finish": (_FINISH_SQL,),
}
"""Every statement that changes a review row, by the transition (``bot.review.states``) it
writes; each is checked against the table here, on import, so a status change outside the
table cannot ship."""


def _check_transitions() -> None:
    for name, statements in TRANSITION_SQL.items():
        for sql in statements:
            check_sql(name, sql)


_check_transitions()


@dataclass(frozen=True)
class ReviewRow:
    ref: str
    thread_id: str
    interrupt_id: str
    team_id: str | None
    channel_id: str
    thread_ts: str
    message_ts: str | None
    tool_name: str
    request: ReviewRequest
    status: str
    action: str | None
    decided_by: str | None
    decided_at: datetime | None
    edited_args: dict[str, Any] | None = None
    feedback: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    version: int = 0
    proposed_edit: dict[str, Any] | None = None
    proposed_by: str | None = None
    needs_sync: bool = False
    lapsed: bool = False
    """Pending with its time run out, by the database's clock when the row was read."""
    message_copies: tuple[str, ...] = ()
    policy_match: dict[str, Any] | None = None
    """The rule the review was registered under (``bot.policy_rules.CallPolicy.stored``)."""
    card_channel: str | None = None
    """Where the card lives when it was routed away from the conversation (``bot.routing``);
    None: in the conversation's thread. Every copy (``messages``) is in this channel."""
    conversation_link: str | None = None
    """A routed card's link back to the conversation (a permalink)."""
    escalated_at: datetime | None = None
    """When the escalation targets were pinged and joined the approvers (None: not yet)."""
    escalate_to: tuple[str, ...] = ()
    """Who joins the approvers on escalation (users and user groups), fixed at registration."""

    @property
    def escalated_to(self) -> frozenset[str]:
        """Who decides this review besides its approvers: its targets, once it escalated."""
        return frozenset(self.escalate_to) if self.escalated_at is not None else frozenset()

    args_digest: str | None = None
    """The digest (``graph.digest``) the claimed decision is bound to."""
    decision_detail: str | None = None
    """The decision event's detail, stored with the claim (a call run under a standing
    approval names the grant and the use): whoever finishes the claim records it."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ReviewRow:
        fields = {name: row[name] for name in cls.__dataclass_fields__ if name in row}
        fields["message_copies"] = tuple(fields.get("message_copies") or ())
        fields["escalate_to"] = tuple(fields.get("escalate_to") or ())
        return cls(**fields)

    @property
    def messages(self) -> tuple[str, ...]:
        """Every message showing this review, the first one first: where a decision is
        painted. Normally one; a copy posted by a process that died before it could store
        the ts is added when found (or clicked)."""
        first = (self.message_ts,) if self.message_ts else ()
        return tuple(dict.fromkeys((*first, *self.message_copies)))

    @property
    def card_channel_id(self) -> str:
        """The channel every copy of the card is in."""
        return self.card_channel or self.channel_id

    @property
    def decision(self) -> ReviewDecision | None:
        """The decision the row holds (claimed or settled), in the shared vocabulary; the
        ``action`` column keeps the seed's words (``continue``, ``update``, ``feedback``,
        ``expired``), translated here."""
        return from_stored(
            self.action, self.decided_by, self.edited_args, self.feedback, self.args_digest
        )


@dataclass(frozen=True)
class Expired:
    """A typed refusal: the review's time ran out before this decision reached it, so the
    decision was not recorded. ``review`` is the row as it stands (still pending)."""

    review: ReviewRow

    @property
    def at(self) -> datetime:
        return self.review.expires_at or datetime.now(UTC)


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class BotStore:
    """The bot's rows. ``recover_after_seconds``: how long a claimed decision or event may go
    without a sign of life before a sweeper takes it over; whoever works on one beats at a
    third of that (and of :data:`STALE_EVENT_SECONDS`), so a slow but live worker is never
    taken for dead, and only a dead one (or one that dropped its claim) is replaced."""

    def __init__(self, pool: Pool, *, recover_after_seconds: float = 90.0) -> None:
        self.pool = pool
        self.heartbeat_seconds = max(min(recover_after_seconds, STALE_EVENT_SECONDS) / 3, 0.1)

    async def _row(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchone()

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchall()

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(sql, params)

    async def _review(self, sql: str, params: tuple[Any, ...]) -> ReviewRow | None:
        row = await self._row(sql, params)
        return None if row is None else ReviewRow.from_row(row)

    @asynccontextmanager
    async def _beating(self, sql: LiteralString, keys: list[str]) -> AsyncIterator[None]:
        """Run ``sql`` (which refreshes the ``heartbeat_at`` of the rows ``keys`` name) every
        :attr:`heartbeat_seconds` while the block runs. Most blocks end before the first beat
        is due: a timer costs less than a task started and cancelled for each."""
        if not keys:
            yield
            return
        beats: list[asyncio.Task[None]] = []
        timer = asyncio.get_running_loop().call_later(
            self.heartbeat_seconds, lambda: beats.append(asyncio.create_task(self._beat(sql, keys)))
        )
        try:
            yield
        finally:
            timer.cancel()
            for task in beats:
                task.cancel()
            if beats:
                await asyncio.wait(beats)

    async def _beat(self, sql: LiteralString, keys: list[str]) -> None:
        while True:
            try:
                await self._execute(sql, (keys,))
            except Exception:  # the work goes on; the next beat may get through
                log.warning("could not refresh the heartbeat of %s", keys, exc_info=True)
            await asyncio.sleep(self.heartbeat_seconds)

    # -- events and conversations ----------------------------------------------------------

    async def claim_event(self, event_id: str, body: dict[str, Any] | None = None) -> bool:
        """True if this delivery should be handled: first seen, or its first handler died.

        A retry of an event we are still handling (its handler beats, see :meth:`handling`)
        or handled is dropped; a retry whose first delivery never arrived, or whose handler
        has shown no sign of life for :data:`STALE_EVENT_SECONDS`, is taken. The body is kept
        with the claim: Slack does not resend an event it saw acknowledged, so if this process
        dies mid-way, the sweeper handles the event again from here.
        """
        row = await self._row(
            """
            INSERT INTO slack_events AS e (event_id, status, body) VALUES (%s, 'handling', %s)
            ON CONFLICT (event_id) DO UPDATE SET claimed_at = now(), heartbeat_at = NULL
                WHERE e.status = 'handling'
                  AND GREATEST(e.claimed_at, e.heartbeat_at)
                      < now() - make_interval(secs => %s)
            RETURNING event_id
            """,
            (event_id, _json(body), STALE_EVENT_SECONDS),
        )
        return row is not None

    def handling(self, *event_ids: str) -> AbstractAsyncContextManager[None]:
        """While events are being answered: their heartbeat, so no sweeper answers them
        again."""
        return self._beating(
            "UPDATE slack_events SET heartbeat_at = now() "
            "WHERE event_id = ANY (%s) AND status = 'handling'",
            list(event_ids),
        )

    async def stale_events(
        self, older_than_seconds: float, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Events whose handler shows no sign of life (it died, or dropped the event), taken
        over atomically: the heartbeat restarts, so no other sweeper answers them too."""
        rows = await self._rows(_STALE_EVENTS_SQL, (older_than_seconds, limit))
        return [dict(row["body"]) for row in rows]

    async def finish_event(self, event_id: str) -> None:
        await self._row(
            "UPDATE slack_events SET status = 'done', body = NULL WHERE event_id = %s "
            "RETURNING event_id",
            (event_id,),
        )

    async def remember_conversation(
        self, thread_id: str, team_id: str | None, channel_id: str, thread_ts: str, user: str
    ) -> None:
        await self._row(
            """
            INSERT INTO slack_conversations (thread_id, team_id, channel_id, thread_ts, started_by)
            VALUES (%s, %s, %s, %s, %s) ON CONFLICT (thread_id) DO NOTHING
            RETURNING thread_id
            """,
            (thread_id, team_id, channel_id, thread_ts, user),
        )

    async def is_conversation(self, thread_id: str) -> bool:
        row = await self._row(
            "SELECT 1 AS found FROM slack_conversations WHERE thread_id = %s", (thread_id,)
        )
        return row is not None

    # -- reviews -----------------------------------------------------------------------------

    async def add_review(
        self,
        thread_id: str,
        interrupt_id: str,
        team_id: str | None,
        channel_id: str,
        thread_ts: str,
        request: ReviewRequest,
        *,
        ttl_seconds: float | None = None,
        remind_before_seconds: float | None = None,
        audit: AuditEvent | None = None,
        policy_match: Mapping[str, Any] | None = None,
        card_channel: str | None = None,
        conversation_link: str | None = None,
        escalate_after_seconds: float | None = None,
        escalate_to: frozenset[str] = frozenset(),
    ) -> str | None:
        """Register a review to post; None if it was already registered (a replayed outcome).

        ``card_channel``: where the card will be posted when routed away from the conversation
        (with ``conversation_link`` to show on it); ``escalate_after_seconds``: when the
        sweeper escalates it to ``escalate_to`` if still undecided.

        ``audit`` (the ``requested`` event) is appended in the same statement, so the trail
        shows the request before anyone can click on it. If the entry alone is refused, the
        review is registered without it and the failure logged: a review that is never
        registered would leave its call waiting for ever.
        """
        remind_after = (
            ttl_seconds - remind_before_seconds
            if ttl_seconds is not None and remind_before_seconds is not None
            else None
        )
        ref = secrets.token_urlsafe(16)
        params = (
            ref,
            thread_id,
            interrupt_id,
            team_id,
            channel_id,
            thread_ts,
            request["tool_call"]["name"],
            Json(request),
            ttl_seconds,
            remind_after,
            Json(dict(policy_match)) if policy_match is not None else None,
            card_channel,
            conversation_link,
            escalate_after_seconds if escalate_to else None,
            sorted(escalate_to),
        )
        if audit is not None:
            try:
                row = await self._row(_ADD_REVIEW_AND_AUDIT_SQL, (*params, *insert_params(audit)))
                return None if row is None else ref
            except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
                raise  # the database is unreachable: registering alone would fail as well
            except Exception:
                log.exception("could not write the audit trail (requested on %s)", interrupt_id)
        row = await self._row(f"{_ADD_REVIEW_SQL} RETURNING ref", params)
        return None if row is None else ref

    async def unposted_review(
        self, thread_id: str, interrupt_id: str, older_than_seconds: float = 30.0
    ) -> str | None:
        """A review registered long enough ago but never shown (its poster died): its ref."""
        row = await self._row(
            "SELECT ref FROM slack_reviews WHERE thread_id = %s AND interrupt_id = %s "
            "AND message_ts IS NULL AND status = 'pending' "
            "AND created_at < now() - make_interval(secs => %s)",
            (thread_id, interrupt_id, older_than_seconds),
        )
        return None if row is None else str(row["ref"])

    async def add_copy(self, ref: str, message_ts: str) -> bool:
        """Record a message showing the review: the first becomes ``message_ts``, and every
        one is kept in ``message_copies`` so a decision paints them all.

        True when the review moved on before the message was recorded (someone decided,
        edited or voted from a surface that does not name this message, such as the Edit
        modal or the App Home): whoever painted then could not know this message, so the
        caller repaints it. A decision that reads the row after this write finds the message;
        one that read it before is seen here: the paint is never lost between the two."""
        row = await self._row(_ADD_COPY_SQL, (message_ts, message_ts, message_ts, ref))
        return bool(row and row["moved_on"])

    async def get(self, ref: str) -> ReviewRow | None:
        if "\x00" in ref:  # PostgreSQL text cannot hold NUL; no ref of ours contains one
            return None
        return await self._review(
            "SELECT *, COALESCE(status = 'pending' AND expires_at <= now(), false) AS lapsed "
            "FROM slack_reviews WHERE ref = %s",
            (ref,),
        )

    async def _guarded(
        self, change: LiteralString, params: tuple[Any, ...], ref: str
    ) -> ReviewRow | Expired | None:
        """Run ``change`` (an UPDATE of one review, without RETURNING): the changed row, the
        typed refusal if the review had expired, or None if it was no longer pending."""
        row = await self._row(_GUARDED_SQL.format(change=change), (*params, ref))
        if row is None:
            return None
        review = ReviewRow.from_row(row)
        if row["changed"]:
            return review
        return Expired(review) if row["lapsed"] else None

    async def claim(
        self, ref: str, decision: ReviewDecision, *, detail: str | None = None
    ) -> ReviewRow | Expired | None:
        """Move a pending review to 'deciding', storing the decision with the claim.

        ``detail``: the decision event's detail, stored with it so that a claim finished by
        another process (the sweeper, after this one died) records the same event.

        None if someone got there first; :class:`Expired` (and nothing stored) if the review's
        time ran out: the check is part of the claim itself, so no click can slip past it.
        The expiry itself (:class:`Expire`, transition ``claim_expiry``) claims only a review
        whose time ran out, by the database's clock.
        """
        params = (
            stored_action(decision.kind),
            decision.by,
            _json(dict(decision.args)) if isinstance(decision, Edit) else None,
            decision.text if isinstance(decision, Feedback | Expire) else None,
            decision.digest if isinstance(decision, Approve | Edit) else None,
            detail,
            ref,
        )
        sql = _CLAIM_EXPIRY_SQL if isinstance(decision, Expire) else _CLAIM_SQL
        return await self._guarded(sql, params, ref)

    async def finish(
        self,
        ref: str,
        audit: AuditEvent,
        *,
        action: str | None = None,
        by: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Mark a review decided and append its decision event, in one statement.

        Every settle path must say what was decided (``audit`` is required): a review settled
        without its event would be a call that ran with no trace. ``action``/``by``/``at``
        record a decision made elsewhere. A review already settled is left alone and gets no
        second event. If the audit entry alone fails, the review is settled without it and
        the failure logged: the decision itself is safe in the review row either way.
        """
        params = (action, by, at, ref)
        try:
            await self._execute(_FINISH_AND_AUDIT_SQL, (*params, *insert_params(audit)))
            return
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
            raise  # the database is unreachable: settling alone would fail as well
        except Exception:
            log.exception("could not write the audit trail (%s on %s)", audit.outcome, ref)
        await self._execute(_FINISH_SQL, params)

    async def release(self, ref: str) -> None:
        """Undo a claim whose decision could not be applied, so someone can try again."""
        await self._row(_RELEASE_SQL, (ref,))

    async def mark_repaint(self, ref: str, unsynced: bool = True) -> None:
        """Remember that the Slack message does not show the review's state yet."""
        await self._row(_MARK_REPAINT_SQL, (unsynced, ref))

    async def thread_arguments(
        self, thread_id: str, limit: int = 500
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """Per review of the thread, newest first: its tool and every set of arguments it
        carried (as proposed, edited, awaiting a quorum), so the bot can mask redacted values
        wherever a result or reply repeats them. One scan of the ``(thread_id, interrupt_id)``
        unique index."""
        rows = await self._rows(
            """
            SELECT tool_name, request -> 'tool_call' -> 'args' AS args, edited_args, proposed_edit
            FROM slack_reviews WHERE thread_id = %s ORDER BY created_at DESC LIMIT %s
            """,
            (thread_id, limit),
        )
        return [
            (
                str(row["tool_name"]),
                [
                    row[key]
                    for key in ("args", "edited_args", "proposed_edit")
                    if isinstance(row[key], dict)
                ],
            )
            for row in rows
        ]

    # -- quorum ------------------------------------------------------------------------------

    async def approve(
        self, ref: str, version: int, user: str, digest: str | None = None
    ) -> list[str] | Expired | None:
        """Record one person's approval of a version, bound to ``digest`` (of the arguments
        they approved); every approver of that version *and digest* so far, in order: votes
        for other arguments never add up (an edit in between, or a proposal changed under
        them).

        The approval is recorded only on a pending review whose time has not run out and
        whose proposal is still ``version``, checked in the inserting statement:
        :class:`Expired` if it had run out, None if the review was decided or edited
        meanwhile (nothing recorded either way). A vote for a superseded proposal is never
        stored: with the approvals it would join, it could otherwise reach the quorum and run
        the arguments someone had already proposed to change.
        """
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(_APPROVE_SQL, (ref, version, version, user, digest, ref))
            ).fetchone()
            if row is None:
                return None
            if not row["live"]:
                return Expired(ReviewRow.from_row(row)) if row["lapsed"] else None
            rows = await (await conn.execute(_VOTES_SQL, (ref, version, digest))).fetchall()
        return [str(row["user_id"]) for row in rows]

    async def approvals(self, ref: str, version: int) -> list[str]:
        rows = await self._rows(
            "SELECT user_id FROM slack_review_approvals WHERE ref = %s AND version = %s "
            "ORDER BY at, user_id",
            (ref, version),
        )
        return [str(row["user_id"]) for row in rows]

    async def propose_edit(
        self, ref: str, version: int, args: dict[str, Any], user: str
    ) -> ReviewRow | Expired | None:
        """Replace the proposal with an edit; earlier approvals were for other arguments.

        None if the review changed meanwhile; :class:`Expired` if its time ran out (checked
        in the same statement; nothing is changed then)."""
        return await self._guarded(_PROPOSE_EDIT_SQL, (Jsonb(args), user, ref, version), ref)

    # -- the sweeper's queries ------------------------------------------------------------

    async def due_for_expiry(self, limit: int = 50) -> list[ReviewRow]:
        rows = await self._rows(_DUE_SQL, (limit,))
        return [ReviewRow.from_row(row) for row in rows]

    async def remind_due(self, limit: int = 50) -> list[ReviewRow]:
        """Claim reminders atomically, so only one replica posts each."""
        rows = await self._rows(_REMIND_SQL, (limit,))
        return [ReviewRow.from_row(row) for row in rows]

    async def escalate(self, limit: int = 50) -> list[ReviewRow]:
        """Claim due escalations atomically (``escalate``), so only one replica pings each and
        a review decided first is never escalated."""
        rows = await self._rows(_ESCALATE_SQL, (limit,))
        return [ReviewRow.from_row(row) for row in rows]

    def deciding(self, *refs: str) -> AbstractAsyncContextManager[None]:
        """While claimed decisions are being applied (or wait their turn to be): their
        heartbeat, so no sweeper applies them again however long the tool and the model
        take."""
        return self._beating(_BEAT_SQL, list(refs))

    async def take_over(self, older_than_seconds: float, limit: int = 50) -> list[ReviewRow]:
        """Decisions claimed and never finished whose applier shows no sign of life for
        ``older_than_seconds`` (it died, or dropped the claim), taken over atomically: the
        heartbeat restarts, so no other sweeper replays them too. Age alone means nothing: a
        live applier keeps beating (:meth:`deciding`) while it waits on a slow model.

        A decision taken over after its review expired fails closed: the same statement turns
        it into the expiry (``action='expired'``), so a late recovery runs nothing the agent has
        not already been given (if it had, the agent's own record wins when applied)."""
        rows = await self._rows(_TAKE_OVER_SQL, (older_than_seconds, limit))
        return [ReviewRow.from_row(row) for row in rows]

    async def unsynced(self, limit: int = 50) -> list[ReviewRow]:
        rows = await self._rows(_UNSYNCED_SQL, (limit,))
        return [ReviewRow.from_row(row) for row in rows]
