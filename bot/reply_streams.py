"""Which streamed replies are open, kept in PostgreSQL so a crash never leaves one "typing".

A row is written when a stream starts (``chat.startStream``), touched at each append and deleted
when it stops. The sweeper (``bot.sweeper``) closes a stream silent for longer than its
worker's heartbeat allows: it deletes the row (one replica wins: ``DELETE ... RETURNING``) and
then stops the stream in Slack, so the message ends as an ordinary one with what was written.
"""

from __future__ import annotations

from dataclasses import dataclass

from graph.db import Pool

OPEN_SQL = (
    "INSERT INTO bot_reply_streams (channel_id, ts, thread_id) VALUES (%s, %s, %s) "
    "ON CONFLICT (channel_id, ts) DO UPDATE SET touched_at = now()"
)
TOUCH_SQL = "UPDATE bot_reply_streams SET touched_at = now() WHERE channel_id = %s AND ts = %s"
CLOSE_SQL = "DELETE FROM bot_reply_streams WHERE channel_id = %s AND ts = %s"
TAKE_STALE_SQL = (
    "DELETE FROM bot_reply_streams WHERE touched_at < now() - make_interval(secs => %s) "
    "RETURNING channel_id, ts, thread_id"
)


@dataclass(frozen=True)
class OpenStream:
    channel_id: str
    ts: str
    thread_id: str


class StreamRecords:
    """The ``bot_reply_streams`` rows (migration step "reply streams")."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def opened(self, stream: OpenStream) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(OPEN_SQL, (stream.channel_id, stream.ts, stream.thread_id))

    async def touched(self, channel_id: str, ts: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(TOUCH_SQL, (channel_id, ts))

    async def closed(self, channel_id: str, ts: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(CLOSE_SQL, (channel_id, ts))

    async def take_stale(self, silent_for: float) -> list[OpenStream]:
        """Claim the streams silent for ``silent_for`` seconds (their worker is taken for
        dead); each is returned to one caller only."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(TAKE_STALE_SQL, (silent_for,))).fetchall()
        return [OpenStream(str(r["channel_id"]), str(r["ts"]), str(r["thread_id"])) for r in rows]
