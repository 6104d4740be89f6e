"""The storage a review's effects need, as a Protocol: ``bot.store.BotStore`` implements it
(in PostgreSQL); the lifecycle is written against this, not against SQL. Each method that
changes a row is named by (or documented with) its transition in ``bot.review.states``."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from bot.audit import AuditEvent
from bot.store import BotStore, Expired, ReviewRow
from graph import ReviewDecision, ReviewRequest


class ReviewStorage(Protocol):
    async def get(self, ref: str) -> ReviewRow | None: ...

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
        """``register``."""
        ...

    async def unposted_review(
        self, thread_id: str, interrupt_id: str, older_than_seconds: float = 30.0
    ) -> str | None: ...

    async def add_copy(self, ref: str, message_ts: str) -> bool:
        """``add_copy``; True: the review moved on before the message was recorded."""
        ...

    async def claim(
        self, ref: str, decision: ReviewDecision, *, detail: str | None = None
    ) -> ReviewRow | Expired | None:
        """``claim`` (a person) or ``claim_expiry`` (an :class:`graph.Expire`); ``detail``:
        the decision event's detail, kept with the claim for whoever finishes it."""
        ...

    async def approve(
        self, ref: str, version: int, user: str, digest: str | None = None
    ) -> list[str] | Expired | None:
        """``approve``."""
        ...

    async def propose_edit(
        self, ref: str, version: int, args: dict[str, Any], user: str
    ) -> ReviewRow | Expired | None:
        """``propose_edit``."""
        ...

    async def approvals(self, ref: str, version: int) -> list[str]: ...

    async def finish(
        self,
        ref: str,
        audit: AuditEvent,
        *,
        action: str | None = None,
        by: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """``finish``, with its audit event in the same statement."""
        ...

    async def release(self, ref: str) -> None:
        """``release``."""
        ...

    async def mark_repaint(self, ref: str, unsynced: bool = True) -> None:
        """``mark_repaint``."""
        ...

    def deciding(self, *refs: str) -> AbstractAsyncContextManager[None]:
        """``beat`` while the block runs."""
        ...

    async def thread_arguments(
        self, thread_id: str, limit: int = 500
    ) -> list[tuple[str, list[dict[str, Any]]]]: ...


def _implemented_by(store: BotStore) -> ReviewStorage:
    return store  # mypy checks here that BotStore is a ReviewStorage
