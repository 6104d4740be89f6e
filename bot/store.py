"""The bot's own tables: which Slack message shows which review, and which events were seen.

Button values carry only ``ref``, a random token; everything else is looked up here, so a
tampered value finds nothing. The ``status`` column is the fast path that lets exactly one of
many simultaneous clicks proceed; the agent service re-checks under its thread lease anyway.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from graph import ReviewRequest
from graph.db import Pool

BOT_SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS slack_reviews (
        ref text PRIMARY KEY,
        thread_id text NOT NULL,
        interrupt_id text NOT NULL,
        team_id text,
        channel_id text NOT NULL,
        thread_ts text NOT NULL,
        message_ts text,
        tool_name text NOT NULL,
        request jsonb NOT NULL,
        status text NOT NULL DEFAULT 'pending',
        action text,
        decided_by text,
        decided_at timestamptz,
        edited_args jsonb,
        feedback text,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (thread_id, interrupt_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS slack_events (
        event_id text PRIMARY KEY,
        status text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS slack_conversations (
        thread_id text PRIMARY KEY,
        team_id text,
        channel_id text NOT NULL,
        thread_ts text NOT NULL,
        started_by text,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)

STALE_EVENT_SECONDS = 120


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

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ReviewRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


class BotStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def claim_event(self, event_id: str) -> bool:
        """True if this delivery should be handled: first seen, or its first attempt died.

        A retry of an event we are still handling (or handled) is dropped; a retry whose first
        delivery never arrived, or whose handler vanished long ago, is taken.
        """
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    """
                INSERT INTO slack_events AS e (event_id, status) VALUES (%s, 'handling')
                ON CONFLICT (event_id) DO UPDATE SET claimed_at = now()
                    WHERE e.status = 'handling'
                      AND e.claimed_at < now() - make_interval(secs => %s)
                RETURNING event_id
                """,
                    (event_id, STALE_EVENT_SECONDS),
                )
            ).fetchone()
        return row is not None

    async def finish_event(self, event_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE slack_events SET status = 'done' WHERE event_id = %s", (event_id,)
            )

    async def remember_conversation(
        self, thread_id: str, team_id: str | None, channel_id: str, thread_ts: str, user: str
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                """
                INSERT INTO slack_conversations (thread_id, team_id, channel_id, thread_ts,
                                                 started_by)
                VALUES (%s, %s, %s, %s, %s) ON CONFLICT (thread_id) DO NOTHING
                """,
                (thread_id, team_id, channel_id, thread_ts, user),
            )

    async def is_conversation(self, thread_id: str) -> bool:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT 1 FROM slack_conversations WHERE thread_id = %s", (thread_id,)
                )
            ).fetchone()
        return row is not None

    async def add_review(
        self,
        thread_id: str,
        interrupt_id: str,
        team_id: str | None,
        channel_id: str,
        thread_ts: str,
        request: ReviewRequest,
    ) -> str | None:
        """Register a review to post; None if it was already posted (a replayed outcome)."""
        ref = secrets.token_urlsafe(16)
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    """
                INSERT INTO slack_reviews (ref, thread_id, interrupt_id, team_id, channel_id,
                                           thread_ts, tool_name, request)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (thread_id, interrupt_id) DO NOTHING
                RETURNING ref
                """,
                    (
                        ref,
                        thread_id,
                        interrupt_id,
                        team_id,
                        channel_id,
                        thread_ts,
                        request["tool_call"]["name"],
                        Jsonb(request),
                    ),
                )
            ).fetchone()
        return None if row is None else str(row["ref"])

    async def set_message(self, ref: str, message_ts: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE slack_reviews SET message_ts = %s WHERE ref = %s", (message_ts, ref)
            )

    async def get(self, ref: str) -> ReviewRow | None:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT * FROM slack_reviews WHERE ref = %s", (ref,))
            ).fetchone()
        return None if row is None else ReviewRow.from_row(row)

    async def claim(self, ref: str, action: str, user: str) -> ReviewRow | None:
        """Move a pending review to 'deciding' for this user; None if someone got there first."""
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    """
                UPDATE slack_reviews
                SET status = 'deciding', action = %s, decided_by = %s, decided_at = now()
                WHERE ref = %s AND status = 'pending'
                RETURNING *
                """,
                    (action, user, ref),
                )
            ).fetchone()
        return None if row is None else ReviewRow.from_row(row)

    async def finish(
        self,
        ref: str,
        *,
        edited_args: dict[str, Any] | None = None,
        feedback: str | None = None,
        action: str | None = None,
        by: str | None = None,
        at: datetime | None = None,
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                """
                UPDATE slack_reviews SET status = 'decided', edited_args = %s, feedback = %s,
                    action = COALESCE(%s, action), decided_by = COALESCE(%s, decided_by),
                    decided_at = COALESCE(%s, decided_at)
                WHERE ref = %s
                """,
                (
                    Jsonb(edited_args) if edited_args is not None else None,
                    feedback,
                    action,
                    by,
                    at,
                    ref,
                ),
            )

    async def release(self, ref: str) -> None:
        """Undo a claim whose decision could not be applied, so someone can try again."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE slack_reviews SET status = 'pending', action = NULL, decided_by = NULL, "
                "decided_at = NULL WHERE ref = %s AND status = 'deciding'",
                (ref,),
            )
