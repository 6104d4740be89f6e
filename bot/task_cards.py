"""Each reviewed call shown as a task in its conversation, updated in place as it moves
(``bot.task_blocks``), linked to its review card. Kept in ``review_tasks`` (bot step
"review tasks"), deleted with the review.

A workspace whose Slack refuses the block (``invalid_blocks``: no task cards there) is
remembered and gets what it had before: the review card and the result messages, no task.
A task is a view of the review, never its truth: no failure here fails a decision.
"""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.streaming import slack_error
from bot.task_blocks import task_blocks, task_text
from bot.threads import SlackThread
from graph.db import Pool

log = logging.getLogger(__name__)

CLAIM_SQL = (
    "INSERT INTO review_tasks (ref, channel_id, tool, link) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (ref) DO NOTHING RETURNING ref"
)
POSTED_SQL = "UPDATE review_tasks SET ts = %s WHERE ref = %s RETURNING phase"
MOVE_SQL = "UPDATE review_tasks SET phase = %s WHERE ref = %s RETURNING channel_id, ts, tool, link"
REFUSED = frozenset({"invalid_blocks", "invalid_blocks_format"})


class TaskCards:
    def __init__(self, client: AsyncWebClient, pool: Pool) -> None:
        self.client, self.pool = client, pool
        self.unsupported: set[str | None] = set()

    async def open(self, thread: SlackThread, ref: str, tool: str, link: str | None) -> None:
        """Post the call's task (pending review) in the conversation, once across replicas:
        the row is claimed before the post. A decision may move the task while it is being
        posted (a quick click): the move is kept in the row, and painted here once the
        message exists, so no phase is lost."""
        if thread.team_id in self.unsupported:
            return
        try:
            async with self.pool.connection() as conn:
                claimed = await conn.execute(CLAIM_SQL, (ref, thread.channel_id, tool, link))
                if await claimed.fetchone() is None:
                    return
            reply = await self.client.chat_postMessage(
                channel=thread.channel_id,
                thread_ts=thread.thread_ts,
                text=task_text(tool, "pending"),
                blocks=task_blocks(ref, tool, "pending", link),
            )
            async with self.pool.connection() as conn:
                row = await (await conn.execute(POSTED_SQL, (reply["ts"], ref))).fetchone()
            if row is not None and row["phase"] != "pending":
                await self._paint(
                    thread.channel_id, str(reply["ts"]), ref, tool, link, row["phase"]
                )
        except Exception as error:
            if slack_error(error) in REFUSED:
                log.info("no task cards in this workspace: the review card stands alone")
                self.unsupported.add(thread.team_id)
            else:
                log.warning("could not show the task of %s", ref, exc_info=True)

    async def move(self, ref: str, phase: str) -> None:
        """Show the task in ``phase`` (``bot.task_blocks.PHASES``), in place."""
        try:
            async with self.pool.connection() as conn:
                row = await (await conn.execute(MOVE_SQL, (phase, ref))).fetchone()
            if row is None or row["ts"] is None:
                return  # no task, or still being posted: its poster paints the phase kept
            await self._paint(row["channel_id"], row["ts"], ref, row["tool"], row["link"], phase)
        except Exception:
            log.warning("could not move the task of %s to %s", ref, phase, exc_info=True)

    async def _paint(
        self, channel: str, ts: str, ref: str, tool: str, link: str | None, phase: str
    ) -> None:
        await self.client.chat_update(
            channel=channel,
            ts=ts,
            text=task_text(tool, phase),
            blocks=task_blocks(ref, tool, phase, link),
        )
