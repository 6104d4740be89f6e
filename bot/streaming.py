"""The agent's reply written into the thread as the model writes it (Slack's streaming).

:class:`SlackReplyStream` is the bot's :class:`graph.streaming.ReplyListener`: the first text
of a model message starts a stream (``chat.startStream``), later text is appended in batches
(``chat.appendStream``: at least ``FLUSH_CHARS`` characters or ``FLUSH_SECONDS`` since the last
call, at most ``APPEND_LIMIT`` characters a call, Slack's limit) and the message's end stops it
(``chat.stopStream``). Each tool result the run reports is shown as it comes, before the model
writes about it, so a streamed turn reads in the same order as an unstreamed one (result
cards, then the reply, then new reviews). When the turn is presented (``bot.turns``), the last
streamed message is made the ordinary reply message (``chat.update`` with the reply's blocks),
so a streamed reply ends exactly as a posted one would, and nothing is posted twice.

Invariants: redacted values never reach Slack (text is masked before it is sent, and a secret
still being written is held back until it is whole: nothing within the longest secret's length
of the end is sent early); mentions are escaped as in every reply. A workspace whose Slack
answers a streaming method with ``unknown_method``, ``not_allowed`` or ``method_deprecated`` is
remembered (:class:`StreamSupport`) and gets today's plain message; any other failure ends the
stream and the reply is posted (or the streamed message repainted) whole. Each open stream is
recorded (``bot.reply_streams``) so the sweeper closes one a crash left open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks, redaction
from bot.mrkdwn import escape
from bot.reply_streams import OpenStream, StreamRecords
from bot.threads import SlackThread
from graph import ToolResult

ResultListener = Callable[[ToolResult], Awaitable[bool]]
"""Told each tool result as the run reports it; True when it showed the result (so the reply
after the run does not show it again)."""

log = logging.getLogger(__name__)

APPEND_LIMIT = 12_000
"""``markdown_text`` of one ``chat.appendStream`` call (Slack's documented limit)."""
FLUSH_CHARS = 256
FLUSH_SECONDS = 0.5
"""A batch goes out when it is this long or this old (``chat.appendStream`` is Tier 4)."""
UNAVAILABLE = frozenset({"unknown_method", "not_allowed", "method_deprecated"})
"""Slack's answers meaning "this workspace does not stream": fall back to a plain message."""


def slack_error(error: Exception) -> str | None:
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or "") or None
    return None


def held_back(raw: str, secrets: Collection[str]) -> int:
    """How much of ``raw`` may be sent now: all of it but the last ``len(longest secret) - 1``
    characters, and never cutting through a secret (a secret starting before the cut is
    then whole within ``raw``, so it is masked)."""
    if not secrets:
        return len(raw)
    cut = max(0, len(raw) - (max(len(s) for s in secrets) - 1))
    for secret in secrets:
        start = raw.find(secret)
        while start != -1:
            if start < cut < start + len(secret):
                cut = start
            start = raw.find(secret, start + 1)
    return cut


@dataclass
class StreamSupport:
    """The workspaces whose Slack does not stream (answered one of ``UNAVAILABLE``)."""

    unavailable: set[str | None] = field(default_factory=set)

    def streams(self, team_id: str | None) -> bool:
        return team_id not in self.unavailable


@dataclass
class Streamed:
    """One model message written into the thread: its ts and the text Slack has."""

    ts: str
    sent: str = ""
    stopped: bool = False
    broken: bool = False


class SlackReplyStream:
    """One run's listener (see the module). Not shared between runs."""

    def __init__(
        self,
        client: AsyncWebClient,
        records: StreamRecords,
        support: StreamSupport,
        thread: SlackThread,
        user: str | None,
        secrets: frozenset[str],
    ) -> None:
        self.client, self.records, self.support = client, records, support
        self.thread, self.user, self.secrets = thread, user, secrets
        self.raw = ""
        self.current: Streamed | None = None
        self.last: Streamed | None = None
        self.pending = ""
        self.flushed_at = 0.0
        self.given_up = not support.streams(thread.team_id)
        self.on_result: ResultListener | None = None
        """Shows a tool result in the thread (set by ``bot.turns``); True once shown."""
        self.shown_results: set[str] = set()
        """The tool call ids whose results were shown during the run (not posted again)."""

    # -- the listener --------------------------------------------------------------------

    async def text(self, delta: str) -> None:
        if self.given_up:
            return
        self.raw += delta
        await self._write(self._ready(held_back(self.raw, self.secrets)), final=False)

    async def message_end(self, *, final: bool) -> None:
        if self.given_up:
            self.raw = ""
            return
        await self._write(self._ready(len(self.raw)), final=True)
        current, self.current, self.raw = self.current, None, ""
        if current is not None:
            await self._stop(current)
            self.last = current

    async def tool_result(self, result: ToolResult) -> None:
        """A call's result, told before the model writes about it: shown now, so the thread
        reads result card, then reply, as an unstreamed turn does (``Turns.present`` skips
        what was shown here). Also where Slack does not stream: the order is the same."""
        if self.on_result is not None and await self.on_result(result):
            self.shown_results.add(result.tool_call_id)

    # -- presenting ----------------------------------------------------------------------

    async def show_reply(self, reply: str) -> bool:
        """Make the last streamed message the ordinary reply message (``reply``: masked, as
        it would be posted). False when nothing was streamed or Slack refused: post it."""
        last = self.last or self.current
        if last is None:
            return False
        if not last.stopped:
            await self._stop(last)
        try:
            await self.client.chat_update(
                channel=self.thread.channel_id,
                ts=last.ts,
                text=blocks.reply_text(reply),
                blocks=blocks.reply_blocks(reply),
            )
        except Exception:
            log.warning("could not make the streamed reply in %s whole", self.thread.thread_id)
            return False
        return True

    # -- Slack ---------------------------------------------------------------------------

    def _ready(self, upto: int) -> str:
        """The masked, escaped text up to ``upto`` not yet handed to Slack."""
        shown = escape(redaction.mask(self.raw[:upto], self.secrets))
        written = (self.current.sent if self.current else "") + self.pending
        return shown[len(written) :] if shown.startswith(written) else ""

    async def _write(self, new: str, *, final: bool) -> None:
        self.pending += new
        if not self.pending:
            return
        due = time.monotonic() - self.flushed_at >= FLUSH_SECONDS
        if not (final or due or len(self.pending) >= FLUSH_CHARS):
            return
        while self.pending and not self.given_up:
            piece, self.pending = self.pending[:APPEND_LIMIT], self.pending[APPEND_LIMIT:]
            await self._send(piece)
        self.flushed_at = time.monotonic()

    async def _send(self, piece: str) -> None:
        try:
            if self.current is None:
                await self._start(piece)
            else:
                await self.client.chat_appendStream(
                    channel=self.thread.channel_id, ts=self.current.ts, markdown_text=piece
                )
                self.current.sent += piece
                await self.records.touched(self.thread.channel_id, self.current.ts)
        except Exception as error:
            await self._give_up(error)

    async def _start(self, piece: str) -> None:
        reply: Any = await self.client.chat_startStream(
            channel=self.thread.channel_id,
            thread_ts=self.thread.thread_ts,
            markdown_text=piece,
            recipient_team_id=self.thread.team_id,
            recipient_user_id=self.user,
        )
        self.current = Streamed(str(reply["ts"]), piece)
        await self.records.opened(
            OpenStream(self.thread.channel_id, self.current.ts, self.thread.thread_id)
        )

    async def _forget(self, streamed: Streamed) -> None:
        try:
            await self.records.closed(self.thread.channel_id, streamed.ts)
        except Exception:  # the sweeper will stop it again: harmless
            log.warning("could not forget the stream %s", streamed.ts, exc_info=True)

    async def _give_up(self, error: Exception) -> None:
        code = slack_error(error)
        self.given_up, self.pending = True, ""
        if code in UNAVAILABLE:
            log.info("Slack does not stream here (%s): replies are posted whole", code)
            self.support.unavailable.add(self.thread.team_id)
        else:
            log.warning("streaming the reply in %s failed: %s", self.thread.thread_id, error)
        if self.current is not None:
            self.current.broken = True

    async def _stop(self, streamed: Streamed) -> None:
        streamed.stopped = True
        try:
            await self.client.chat_stopStream(channel=self.thread.channel_id, ts=streamed.ts)
        except Exception:
            log.warning("could not stop the stream %s in %s", streamed.ts, self.thread.thread_id)
        await self._forget(streamed)


@dataclass(frozen=True)
class ReplyStreams:
    """Opens one :class:`SlackReplyStream` per run (built once by ``bot.flow``)."""

    client: AsyncWebClient
    records: StreamRecords
    support: StreamSupport = field(default_factory=StreamSupport)

    def open(
        self, thread: SlackThread, user: str | None, secrets: frozenset[str]
    ) -> SlackReplyStream:
        return SlackReplyStream(self.client, self.records, self.support, thread, user, secrets)


async def close_stale(client: AsyncWebClient, records: StreamRecords, silent_for: float) -> int:
    """Stop each stream a dead worker left open (the sweeper's step); how many were closed."""
    closed = 0
    for stream in await records.take_stale(silent_for):
        try:
            await client.chat_stopStream(channel=stream.channel_id, ts=stream.ts)
        except Exception as error:  # already stopped, or gone: nothing is left typing
            log.info("stream %s in %s: %s", stream.ts, stream.thread_id, slack_error(error))
        closed += 1
    return closed
