"""Previews on review cards and receipts on decided ones: asked of the agent, kept with the
review, painted by the review's effects.

*Previews.* The card is posted at once; a tool that offers a preview gets a "working out…"
line, and the preview is asked of the agent in the background (``Agent.preview``, at most
:data:`graph.previews.PREVIEW_SECONDS`). When it is in (or failed, or took too long: then "no
preview"), it is stored with a digest of the arguments it describes and the card is repainted.
A card whose arguments changed since (an edit waiting for its quorum) shows "working out…"
again and asks anew: painting a pending card is what asks, so a preview lost to a restart is
asked again by the next repaint. Nothing waits for a preview; a decision never does.

*Receipts.* After a call ran, its receipt (``ToolResult.receipt``: the tool's own, or a
failure in plain words) is stored with the review and shown on the decided card, on every
repaint after.

Both tables (``review_previews``, ``review_receipts``: the bot's migration step "previews and
receipts of reviews") cascade with their review, so retention removes them with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from psycopg.types.json import Jsonb

from bot import preview_blocks
from bot.preview_blocks import Block
from bot.review.shown import current_request
from bot.store import ReviewRow
from graph import Agent, AgentContext, Preview, RunOutcome
from graph.db import Pool
from graph.previews import PREVIEW_SECONDS
from graph.tools.slack import slack_text

log = logging.getLogger(__name__)


BOT_GRACE_SECONDS = 0.5
"""The bot's own cap is the agent's plus this, for an agent elsewhere that never answers."""

Refresh = Callable[[str], Awaitable[None]]


def digest(args: Mapping[str, Any]) -> str:
    """Which arguments a stored preview describes."""
    text = json.dumps(args, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class CardExtras:
    """Previews and receipts of reviews: stored in PostgreSQL, asked of the agent.

    ``on_ready`` repaints a review once its preview is in (wired by ``bot.flow`` to
    ``ReviewEffects.refresh_preview``)."""

    def __init__(self, pool: Pool, agent: Agent, *, seconds: float = PREVIEW_SECONDS) -> None:
        self.pool = pool
        self.agent = agent
        self.seconds = seconds
        self.on_ready: Refresh | None = None
        self._asking: dict[tuple[str, str], asyncio.Task[None]] = {}

    # -- previews ------------------------------------------------------------------------

    def ask(self, ref: str, tool: str, args: Mapping[str, Any], context: AgentContext) -> None:
        """Ask for the preview of these arguments in the background (once at a time)."""
        key = (ref, digest(args))
        if key in self._asking:
            return
        task = asyncio.create_task(self._ask(ref, tool, dict(args), key[1], context))
        self._asking[key] = task
        task.add_done_callback(lambda _: self._asking.pop(key, None))

    async def _ask(
        self, ref: str, tool: str, args: dict[str, Any], made_for: str, context: AgentContext
    ) -> None:
        try:
            async with asyncio.timeout(self.seconds + BOT_GRACE_SECONDS):
                preview = await self.agent.preview(tool, args, context=context)
        except Exception:  # too slow, or an agent without previews: "no preview"
            log.info("no preview for review %s", ref, exc_info=True)
            preview = None
        try:
            await self._store(ref, made_for, preview)
            if self.on_ready is not None:
                await self.on_ready(ref)
        except Exception:
            log.exception("could not show the preview of review %s", ref)

    async def _store(self, ref: str, made_for: str, preview: Preview | None) -> None:
        data = Jsonb(preview.to_data()) if preview is not None else None
        async with self.pool.connection() as conn:
            await conn.execute(
                """
                INSERT INTO review_previews (ref, args_digest, preview) VALUES (%s, %s, %s)
                ON CONFLICT (ref) DO UPDATE
                    SET args_digest = EXCLUDED.args_digest, preview = EXCLUDED.preview,
                        made_at = now()
                """,
                (ref, made_for, data),
            )

    async def stored_preview(self, ref: str) -> tuple[str, Preview | None] | None:
        """The stored preview (None: there was none in time) and the digest it was made for."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT args_digest, preview FROM review_previews WHERE ref = %s", (ref,)
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        made_for, data = _values(row, "args_digest", "preview")
        return str(made_for), Preview.from_data(data) if isinstance(data, dict) else None

    async def pending_blocks(
        self, review: ReviewRow, secrets: Collection[str], context: AgentContext
    ) -> list[Block]:
        """The preview part of a pending card: the preview of its current arguments, else
        "working out…" (and it is asked for); nothing for a tool without previews."""
        if not review.request["tool"].get("preview"):
            return []
        args = current_request(review)["tool_call"]["args"]
        stored = await self.stored_preview(review.ref)
        if stored is not None and stored[0] == digest(args):
            return preview_blocks.preview_blocks(stored[1], posted_forms(secrets))
        self.ask(review.ref, review.tool_name, args, context)
        return preview_blocks.placeholder_blocks()

    async def settled(self) -> None:
        """Wait for every preview being asked (tests, shutdown)."""
        while self._asking:
            await asyncio.gather(*list(self._asking.values()), return_exceptions=True)

    async def close(self, within: float = PREVIEW_SECONDS + 2 * BOT_GRACE_SECONDS) -> None:
        """Let the previews being asked finish (each is bounded) before the pool closes; the
        few a sweep started outside any request are not adopted by the in-flight work.

        Those still running after ``within`` have stopped when this returns: the timeout
        cancels :meth:`settled`'s ``gather``, which cancels each of them and completes only
        once they all have."""
        try:
            async with asyncio.timeout(within):
                await self.settled()
        except TimeoutError:
            for task in list(self._asking.values()):
                task.cancel()

    # -- receipts ------------------------------------------------------------------------

    async def keep_receipt(self, review: ReviewRow, outcome: RunOutcome) -> bool:
        """Store the receipt of this review's call, if the outcome ran it; whether it did."""
        call_id = review.request["tool_call"]["id"]
        result = next((r for r in outcome.tool_results if r.tool_call_id == call_id), None)
        if result is None or result.receipt is None:
            return False
        async with self.pool.connection() as conn:
            await conn.execute(
                """
                INSERT INTO review_receipts (ref, receipt) VALUES (%s, %s)
                ON CONFLICT (ref) DO UPDATE SET receipt = EXCLUDED.receipt
                """,
                (review.ref, Jsonb(dict(result.receipt))),
            )
        return True

    async def decided_blocks(self, review: ReviewRow, secrets: Collection[str]) -> list[Block]:
        """The receipt part of a decided card (nothing before the call ran, or without one)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT receipt FROM review_receipts WHERE ref = %s", (review.ref,)
            )
            row = await cursor.fetchone()
        if row is None:
            return []
        (data,) = _values(row, "receipt")
        if not isinstance(data, dict):
            return []
        return preview_blocks.receipt_blocks(data, posted_forms(secrets))


def posted_forms(secrets: Collection[str]) -> frozenset[str]:
    """The secrets, also as the Slack tools encode text they send (``slack_text`` keeps
    mentions unescaped, unlike ``bot.mrkdwn.escape``): a preview or receipt quotes that form."""
    return frozenset(secrets) | {slack_text(secret) for secret in secrets}


def _values(row: Any, *names: str) -> tuple[Any, ...]:
    """Columns of a row read with either row factory (dict rows or tuples)."""
    if isinstance(row, Mapping):
        return tuple(row[name] for name in names)
    return tuple(row)
