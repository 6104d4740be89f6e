"""A minimal, fast Slack Web API stand-in on loopback, so the bot is what gets measured.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for ``slack_sdk``'s aiohttp
client, answers every method with ``ok``, and notes the moments the benchmark waits for: a
review message posted (with its button value), a message updated, a tool result posted. The
sandbox's Web API would do too, but it keeps a full workspace model per call; this one costs a
few microseconds a call, so it never becomes the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from bot.blocks import APPROVE

BOT_USER = "U0BOT"
TEAM_ID = "T0BENCH"
WAIT_SECONDS = 30.0
# Everyone who opens an App Home in the bench is in its channel, so the Home lists reviews.
MEMBERS = [BOT_USER, *(f"UBULK{index}" for index in range(1000))]

AUTH_TEST = {
    "ok": True,
    "url": "https://bench.slack.com/",
    "team": "Bench",
    "user": "bench-bot",
    "team_id": TEAM_ID,
    "user_id": BOT_USER,
    "bot_id": "B0BOT",
    "is_enterprise_install": False,
}


@dataclass(frozen=True)
class PostedReview:
    ref: str
    channel: str
    ts: str
    thread_ts: str
    at: float
    blocks: list[dict[str, Any]]


class SlackStub:
    """Waiters are keyed by (kind, key); an event may arrive before or after the wait starts."""

    def __init__(self, tool_name: str) -> None:
        self.tool_prefix = f"{tool_name}:"
        self.calls = 0
        self._ts = itertools.count(1)
        self._waiters: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    # -- waiting -------------------------------------------------------------------------------

    def _future(self, kind: str, key: str) -> asyncio.Future[Any]:
        future = self._waiters.get((kind, key))
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiters[(kind, key)] = future
        return future

    def _fire(self, kind: str, key: str, value: Any) -> None:
        future = self._future(kind, key)
        if not future.done():
            future.set_result(value)

    async def review_posted(self, thread_ts: str) -> PostedReview:
        review: PostedReview = await asyncio.wait_for(
            self._future("review", thread_ts), WAIT_SECONDS
        )
        return review

    async def applied(self, review: PostedReview) -> float:
        """When both the review's chat.update and the tool's result post have been seen."""
        updated, result = await asyncio.wait_for(
            asyncio.gather(
                self._future("update", review.ts), self._future("result", review.thread_ts)
            ),
            WAIT_SECONDS,
        )
        self.forget(review)
        return max(float(updated), float(result))

    async def home_published(self, user: str) -> float:
        """When the bot published ``user``'s App Home (views.publish)."""
        at = float(await asyncio.wait_for(self._future("home", user), WAIT_SECONDS))
        self._waiters.pop(("home", user), None)
        return at

    def forget(self, review: PostedReview) -> None:
        for key in (("review", review.thread_ts), ("update", review.ts)):
            self._waiters.pop(key, None)
        self._waiters.pop(("result", review.thread_ts), None)

    # -- HTTP ----------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                reply = json.dumps(self._handle(path, headers, body)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                    b"Content-Length: " + str(len(reply)).encode() + b"\r\n\r\n" + reply
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        self.calls += 1
        method = path.split("?")[0].rsplit("/", 1)[-1]
        args = _arguments(headers.get("content-type", ""), path, body)
        if method == "auth.test":
            return AUTH_TEST
        now = time.perf_counter()
        channel = str(args.get("channel") or "")
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            thread_ts = str(args.get("thread_ts") or ts)
            blocks = _blocks(args.get("blocks"))
            ref = _review_ref(blocks)
            if ref is not None:
                review = PostedReview(ref, channel, ts, thread_ts, now, blocks)
                self._fire("review", thread_ts, review)
            elif str(args.get("text") or "").startswith(self.tool_prefix):
                self._fire("result", thread_ts, now)
            return {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}}
        if method == "chat.update":
            ts = str(args.get("ts") or "")
            self._fire("update", ts, now)
            return {"ok": True, "channel": channel, "ts": ts}
        if method == "views.publish":
            self._fire("home", str(args.get("user_id") or ""), now)
            return {"ok": True, "view": {"id": "V0BENCH"}}
        if method == "conversations.members":
            return {"ok": True, "members": MEMBERS, "response_metadata": {"next_cursor": ""}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}
        return {"ok": True}


def _arguments(content_type: str, path: str, body: bytes) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        parsed = json.loads(body or b"{}")
        return parsed if isinstance(parsed, dict) else {}
    query = path.partition("?")[2]
    text = body.decode() + ("&" + query if query else "")
    return {key: values[-1] for key, values in urllib.parse.parse_qs(text).items()}


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = json.loads(value)
    return [block for block in value or [] if isinstance(block, dict)]


def _review_ref(blocks: list[dict[str, Any]]) -> str | None:
    for block in blocks:
        if block.get("type") == "actions":
            for element in block.get("elements") or []:
                if isinstance(element, dict) and element.get("action_id") == APPROVE:
                    return str(element.get("value"))
    return None
