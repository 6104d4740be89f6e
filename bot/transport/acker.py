"""The acknowledging process: Slack's HTTP requests arrive here, in a small process of its own,
and a signed button click is answered at once, before the bot's process has even read it.

Why a process. Slack gives a click three seconds and a person feels every tenth of one. In the
bot's process the acknowledgement shares one event loop (and about half a core on a busy
two-core machine) with every decision being applied: a burst of 200 clicks waited behind the
HTTP stack and the decisions of the first clicks (ack p99 83–125 ms; ``docs/benchmarks.md``).
Here it shares nothing: the operating system schedules this process apart, and it does only
the cheap checks (:mod:`bot.transport.checks`) and a little HTTP, with ``httptools``, the parser
uvicorn uses, and no framework.

What it does with each request on the listening socket the bot's process hands it:

- a body over the cap: 413 as soon as it says so or grows past it, closed lingering (the rest
  read and discarded, bounded) so the client can read the answer;
- an unsigned ``POST /slack/events``: 401 (200 for Slack's certificate check), never forwarded;
- a signed click: 200 at once, then forwarded to the bot over its Unix socket (the click lane:
  one kept-alive connection, requests pipelined, answers read and checked). A click is
  acknowledged only while the lane is connected; otherwise it gets 503 and Slack shows the
  person an error, so no acknowledged click is dropped here while the bot is away;
- anything else (events, commands, modal submissions, option lists, health, readiness,
  metrics): forwarded as it is and the bot's answer relayed (a modal's errors, a challenge),
  or 502 if the bot cannot be reached.

Invariants: nothing unsigned reaches the bot through here; the bot verifies every forwarded
request again (this process is not trusted with decisions, only with being fast); answers on a
connection leave in the order its requests came (HTTP/1.1 pipelining); every wait is bounded.

Run by :class:`bot.transport.ack_process.AckProcess` as ``python -m bot.transport.acker``; it
imports only the standard library, ``httptools`` and :mod:`bot.transport.checks`, so it starts
in a fraction of a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import json
import logging
import os
import signal
import socket
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import httptools

from bot.logs import configure_logging, parse_format
from bot.transport.checks import (
    DIGITS,
    LINGER_BYTES,
    LINGER_SECONDS,
    MAX_BODY_BYTES,
    is_click,
    is_ssl_check,
    signature_matches,
)

log = logging.getLogger("bot.acker")

SECRET_VARIABLE = "ACKER_SIGNING_SECRET"
"""Where the signing secret is passed (the environment, not the command line, which any local
user can read)."""

KEEP_ALIVE_SECONDS = 5.0
"""An idle client connection is closed after this long (uvicorn's default)."""

REQUEST_SECONDS = 30.0
"""The longest a request may take to arrive whole (a slow sender gets 408)."""

UPSTREAM_SECONDS = 30.0
"""The longest a forwarded request waits for the bot's answer (then 504)."""

SWEEP_SECONDS = 0.5
"""How often connections' deadlines are checked (each fires at most this late)."""

MOST_PIPELINED = 16
"""Answers a client connection may have outstanding before reading from it pauses."""

IDLE_UPSTREAM = 16
"""Idle connections to the bot kept for forwarded requests."""

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
"""Headers that describe one connection, not the request: each hop writes its own (the body
is forwarded whole, with its own ``Content-Length``)."""

ACKNOWLEDGED = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def answer(status: int, body: dict[str, str] | None = None, *, close: bool = False) -> bytes:
    """A whole HTTP/1.1 response with a JSON body (or none)."""
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
    if payload:
        head += "content-type: application/json\r\n"
    if close:
        head += "connection: close\r\n"
    return head.encode() + b"content-length: %d\r\n\r\n" % len(payload) + payload


class Request:
    """One request as it arrived, its body read whole (at most the cap), with the headers the
    checks read kept apart as they arrive (no lookups on the hot path)."""

    __slots__ = (
        "body",
        "content_length",
        "content_type",
        "headers",
        "method",
        "signature",
        "timestamp",
        "url",
    )

    def __init__(self) -> None:
        self.method = b""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.content_length = ""
        self.content_type = ""
        self.timestamp = ""
        self.signature = ""

    def add_header(self, name: bytes, value: bytes) -> None:
        """Keep a header (``name`` lower-case); the first of each checked one counts."""
        self.headers.append((name, value))
        attribute = CHECKED_HEADERS.get(name)
        if attribute is not None and not getattr(self, attribute):
            setattr(self, attribute, value.decode("latin-1"))

    @property
    def path(self) -> bytes:
        return self.url.split(b"?", 1)[0]

    def forwarded(self) -> bytes:
        """The request as the bot reads it: the same line, headers and body, with this hop's
        framing (``Content-Length``, kept alive)."""
        lines = [b"%s %s HTTP/1.1" % (self.method, self.url)]
        lines += [b"%s: %s" % item for item in self.headers if item[0] not in HOP_BY_HOP]
        lines.append(b"content-length: %d" % len(self.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + bytes(self.body)


CHECKED_HEADERS = {
    b"content-length": "content_length",
    b"content-type": "content_type",
    b"x-slack-request-timestamp": "timestamp",
    b"x-slack-signature": "signature",
}


# -- the bot's side: connections over its Unix socket ------------------------------------------


class UpstreamConnection(asyncio.Protocol):
    """One connection to the bot's server: requests written back to back (pipelined), answers
    read in order and handed to the request that asked, re-framed for the client.

    Invariant: ``waiting`` holds one future per request written and not yet answered, oldest
    first; when the connection is lost each gets ``None``.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[bytes | None]] = deque()
        self.parser = httptools.HttpResponseParser(self)
        self.lost = asyncio.get_running_loop().create_future()
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def send(self, request: bytes) -> asyncio.Future[bytes | None]:
        """Write a request; its future gets the answer (None if the connection is lost first)."""
        [future] = self.send_all([request])
        return future

    def send_all(self, requests: list[bytes]) -> list[asyncio.Future[bytes | None]]:
        """Write requests in one go; a future for each answer, in order."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bytes | None]] = [loop.create_future() for _ in requests]
        self.waiting.extend(futures)
        self.transport.write(b"".join(requests))
        return futures

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            log.warning("the bot's server answered with bytes that are not HTTP; reconnecting")
            if self.transport is not None:
                self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        head = [b"HTTP/1.1 %d %s" % (status, http.HTTPStatus(status).phrase.encode())]
        head += [b"%s: %s" % item for item in self._headers if item[0] not in HOP_BY_HOP]
        head.append(b"content-length: %d" % len(self._body))
        response = b"\r\n".join(head) + b"\r\n\r\n" + bytes(self._body)
        self._headers, self._body = [], bytearray()
        if self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)


class Upstream:
    """The bot's server at ``path``: a click lane kept connected, and a few idle connections
    for the requests whose answers are relayed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lane: UpstreamConnection | None = None
        self.idle: list[UpstreamConnection] = []
        self.unanswered: set[asyncio.Future[bytes | None]] = set()
        self.outbox: list[Request] = []
        self.closing = False
        self._keeper: asyncio.Task[None] | None = None

    async def connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_unix_connection(UpstreamConnection, self.path)
        return connection

    async def start(self, within: float) -> None:
        """Connect the click lane (raising after ``within`` seconds), and keep it connected."""
        self.lane = await asyncio.wait_for(self.connect(), within)
        self._keeper = asyncio.create_task(self._keep_lane())

    async def _keep_lane(self) -> None:
        """Reconnect the lane whenever it is lost, backing off up to a second."""
        delay = 0.05
        while not self.closing:
            if self.lane is not None and self.lane.usable:
                await self.lane.lost
                self._say_lost()
            try:
                self.lane = await self.connect()
                delay = 0.05
            except OSError:
                self.lane = None
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    def _say_lost(self) -> None:
        if not self.closing:
            log.warning("lost the connection to the bot's server; reconnecting")

    def forward_click(self, request: Request) -> bool:
        """Take a click for the bot (False, not taken, while the lane is down). It is written
        on the lane once the current round of the event loop is over, with the others taken
        meanwhile (one write), so every acknowledgement of a burst leaves first."""
        lane = self.lane
        if self.closing or lane is None or not lane.usable:
            return False
        if not self.outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self.outbox.append(request)
        return True

    def _flush(self) -> None:
        taken, self.outbox = self.outbox, []
        lane = self.lane
        if lane is None or not lane.usable:
            log.warning("%d acknowledged click(s) lost: the bot's server went away", len(taken))
            return
        for sent in lane.send_all([request.forwarded() for request in taken]):
            self.unanswered.add(sent)
            sent.add_done_callback(self._click_answered)

    def _click_answered(self, future: asyncio.Future[bytes | None]) -> None:
        self.unanswered.discard(future)
        response = future.result()
        if response is None:
            log.warning("a click was acknowledged but the bot's server closed before reading it")
        elif not response.startswith(b"HTTP/1.1 200"):
            log.warning("the bot refused a click acknowledged here: %s", response.split(b"\r\n")[0])

    async def exchange(self, request: Request) -> bytes:
        """Forward a request and return the bot's answer (502 or 504 when there is none)."""
        connection = self._idle()
        if connection is None:
            try:
                connection = await asyncio.wait_for(self.connect(), UPSTREAM_SECONDS)
            except (OSError, TimeoutError):
                return answer(502, {"error": "the bot is not reachable"})
        try:
            response = await asyncio.wait_for(
                connection.send(request.forwarded()), UPSTREAM_SECONDS
            )
        except TimeoutError:
            if connection.transport is not None:
                connection.transport.close()
            return answer(504, {"error": "the bot did not answer in time"})
        if response is None:
            return answer(502, {"error": "the bot closed the connection"})
        if connection.usable and len(self.idle) < IDLE_UPSTREAM:
            self.idle.append(connection)
        elif connection.transport is not None:
            connection.transport.close()
        return response

    def _idle(self) -> UpstreamConnection | None:
        while self.idle:
            connection = self.idle.pop()
            if connection.usable:
                return connection
        return None

    async def close(self, within: float) -> None:
        """Wait (bounded) for the bot to have read every click handed to it, then close."""
        self.closing = True
        if self.unanswered:
            await asyncio.wait(self.unanswered, timeout=within)
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for connection in [self.lane, *self.idle]:
            if connection is not None and connection.transport is not None:
                connection.transport.close()


# -- Slack's side: the connections on the listening socket ------------------------------------


@dataclass(frozen=True)
class Front:
    """What every client connection shares."""

    secret: bytes
    upstream: Upstream
    connections: set[ClientConnection] = field(default_factory=set)

    async def sweep(self, every: float = SWEEP_SECONDS) -> None:
        """Run each connection's deadline once it has passed (one timer for all of them, so
        no request pays for arming and cancelling its own)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for connection in [c for c in self.connections if c.deadline <= now]:
                connection.deadline_passed()


class ClientConnection(asyncio.Protocol):
    """One client connection: requests parsed as they arrive, refused or acknowledged at once
    where the bytes allow, the rest forwarded; answers written in request order.

    Invariants: ``answers`` holds, in arrival order, what is owed for each request read whole
    and not yet answered (the bytes, or a future of them); only its head is ever written, and
    an answer ready when nothing is owed before it is written at once, without a future.
    ``deadline`` is when the connection's current wait ends (idle keep-alive, the request
    still arriving, the lingering after a refusal), run by :meth:`Front.sweep`.
    """

    def __init__(self, front: Front) -> None:
        self.front = front
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.request = Request()
        self.answers: deque[bytes | asyncio.Future[bytes]] = deque()
        self.close_after: object = None  # the answer after which the connection closes
        self.discarded = -1  # >= 0 while lingering: bytes discarded after a refusal
        self.refused = False
        self.deadline = self.loop.time() + KEEP_ALIVE_SECONDS

    # -- connection events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.discarded >= 0:
            self._discard(len(data))
            return
        if self.refused:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(answer(400, {"error": "upgrades are not served"}, close=True))
        except httptools.HttpParserError:
            self._refuse(answer(400, {"error": "malformed HTTP request"}, close=True))

    def eof_received(self) -> bool | None:
        if self.discarded >= 0 and self.transport is not None:
            self.transport.close()
        return None

    def deadline_passed(self) -> None:
        """The wait is over: a lingering connection is dropped, a request still arriving gets
        408, an idle one is closed; one that owes answers waits for them."""
        self.deadline = self.loop.time() + KEEP_ALIVE_SECONDS
        if self.transport is None:
            return
        if self.discarded >= 0 or self.refused:
            self.transport.abort()
        elif self.request.method or self.request.url:
            self._refuse(answer(408, {"error": "request took too long"}, close=True))
        elif not self.answers:
            self.transport.close()

    # -- parser callbacks

    def on_message_begin(self) -> None:
        if self.refused:
            return
        self.deadline = self.loop.time() + REQUEST_SECONDS

    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.request.add_header(name.lower(), value)

    def on_headers_complete(self) -> None:
        request = self.request
        request.method = self.parser.get_method()
        if request.content_length and not DIGITS.fullmatch(request.content_length):
            self._refuse(answer(400, {"error": "bad content-length"}, close=True))
        elif request.content_length and int(request.content_length) > MAX_BODY_BYTES:
            self._refuse(too_large(), linger=True)

    def on_body(self, body: bytes) -> None:
        if self.refused:
            return
        self.request.body += body
        if len(self.request.body) > MAX_BODY_BYTES:
            self._refuse(too_large(), linger=True)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        request, self.request = self.request, Request()
        self.deadline = self.loop.time() + KEEP_ALIVE_SECONDS
        owed = self._answer(request)
        if not self.parser.should_keep_alive():
            owed = self._last(owed)
        self._owe(owed)

    # -- answers

    def _answer(self, request: Request) -> bytes | asyncio.Future[bytes]:
        """The answer to a whole request: the bytes now, or a future of the bot's answer."""
        if request.method == b"POST" and request.path == b"/slack/events":
            now = self._slack_answer(request)
            if now is not None:
                return now
        ready: asyncio.Future[bytes] = self.loop.create_future()
        task = self.loop.create_task(self.front.upstream.exchange(request))
        task.add_done_callback(lambda done: ready.set_result(relayed(done)))
        return ready

    def _slack_answer(self, request: Request) -> bytes | None:
        """The answer this process gives itself, or None to forward and relay."""
        raw = bytes(request.body)
        if not signature_matches(self.front.secret, raw, request.timestamp, request.signature):
            if is_ssl_check(raw):
                return answer(200)
            return answer(401, {"error": "invalid request signature"})
        if not is_click(raw, request.content_type.split(";")[0].strip() or None):
            return None
        if self.front.upstream.forward_click(request):
            return ACKNOWLEDGED
        return answer(503, {"error": "the bot is not ready; try again"})

    def _last(self, owed: bytes | asyncio.Future[bytes]) -> asyncio.Future[bytes]:
        """Mark the answer after which the connection closes (made a future of its own: the
        same bytes, e.g. the acknowledgement, may be owed earlier on the connection too)."""
        if isinstance(owed, bytes):
            ready: asyncio.Future[bytes] = self.loop.create_future()
            ready.set_result(owed)
            owed = ready
        self.close_after = owed
        return owed

    def _owe(self, owed: bytes | asyncio.Future[bytes]) -> None:
        if isinstance(owed, bytes) and not self.answers:
            self._send(owed, owed is self.close_after)
            return
        self.answers.append(owed)
        if isinstance(owed, asyncio.Future):
            owed.add_done_callback(lambda _: self._write_ready())
        if len(self.answers) >= MOST_PIPELINED and self.transport is not None:
            self.transport.pause_reading()
        self._write_ready()

    def _write_ready(self) -> None:
        """Write the answers at the head that are ready, in order."""
        while self.answers:
            head = self.answers[0]
            if isinstance(head, asyncio.Future):
                if not head.done():
                    break
                response = head.result()
            else:
                response = head
            self.answers.popleft()
            if not self._send(response, head is self.close_after):
                return
        if self.transport is not None and len(self.answers) < MOST_PIPELINED:
            self.transport.resume_reading()

    def _send(self, response: bytes, then_close: bool) -> bool:
        """Write one answer; False once the connection is closed (or closing after it)."""
        if self.transport is None:
            return False
        self.transport.write(response)
        if then_close:
            self._close()
            return False
        return True

    def _refuse(self, response: bytes, *, linger: bool = False) -> None:
        """Answer (after what is already owed) and stop reading requests; with ``linger``,
        discard what the client still sends for a bounded while before closing, so a client
        still sending its body reads the answer instead of a reset."""
        self.refused = True
        if linger:
            self.discarded = 0
            self.deadline = self.loop.time() + LINGER_SECONDS
        else:
            self.deadline = self.loop.time() + KEEP_ALIVE_SECONDS
        self._owe(self._last(response))

    def _close(self) -> None:
        """Close once written; while lingering, half-close and keep discarding."""
        if self.transport is None:
            return
        if self.discarded >= 0 and self.transport.can_write_eof():
            self.transport.write_eof()
            return
        self.transport.close()

    def _discard(self, count: int) -> None:
        self.discarded += count
        if self.discarded > LINGER_BYTES and self.transport is not None:
            self.transport.abort()

    async def finish(self, within: float) -> None:
        """Wait (bounded) for the answers owed on this connection, then close it."""
        owed = [item for item in self.answers if isinstance(item, asyncio.Future)]
        if owed:
            await asyncio.wait(owed, timeout=within)
        self._close()


def too_large() -> bytes:
    return answer(413, {"error": "request body too large"}, close=True)


def relayed(exchange: asyncio.Task[bytes]) -> bytes:
    """The bot's answer to a forwarded request, or 502 if forwarding itself failed."""
    if exchange.cancelled() or exchange.exception() is not None:
        if not exchange.cancelled():
            log.warning("forwarding a request failed", exc_info=exchange.exception())
        return answer(502, {"error": "the bot is not reachable"})
    return exchange.result()


# -- the process ------------------------------------------------------------------------------

BACKLOG = 2048
"""Connections the kernel queues before they are accepted (asyncio's default, 100, would
turn a burst of 200 clicks into retried connections a second later)."""


async def watch_parent(stop: asyncio.Event) -> None:
    """Stop when the bot's process goes away: it holds the other end of our standard input,
    which reads end-of-file once it has exited, however it exited."""

    class ParentGone(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            stop.set()

    await asyncio.get_running_loop().connect_read_pipe(ParentGone, sys.stdin)


async def serve(listening: socket.socket, upstream_path: str, secret: bytes) -> None:
    """Acknowledge and forward until SIGTERM or SIGINT, then stop accepting, finish what was
    started (bounded) and return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await watch_parent(stop)
    upstream = Upstream(upstream_path)
    await upstream.start(within=10.0)
    front = Front(secret, upstream)
    sweeper = asyncio.create_task(front.sweep())
    server = await loop.create_server(
        lambda: ClientConnection(front), sock=listening, backlog=BACKLOG
    )
    print("READY", flush=True)
    await stop.wait()
    server.close()
    await asyncio.gather(*(connection.finish(5.0) for connection in list(front.connections)))
    await upstream.close(within=5.0)
    sweeper.cancel()


PRIORITY = -5
"""The niceness asked for: above the bot's process (0), whose decisions this process must never
wait behind. Granted only where the process may raise its priority (root with
``CAP_SYS_NICE``, e.g. outside a container); elsewhere it runs at the same priority as the bot,
still in a process of its own."""


def ask_for_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    except OSError:
        log.debug("runs at the default priority (raising it is not permitted here)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.transport.acker",
        description="The bot's acknowledging process (started by the bot itself).",
    )
    parser.add_argument("--fd", type=int, required=True, help="the listening socket, inherited")
    parser.add_argument("--upstream", required=True, help="the bot's Unix socket")
    args = parser.parse_args(argv)
    secret = os.environ.get(SECRET_VARIABLE, "")
    configure_logging(
        parse_format(os.environ.get("LOG_FORMAT")), os.environ.get("LOG_LEVEL", "INFO"), [secret]
    )
    if not secret:
        sys.exit(f"{SECRET_VARIABLE} is not set")
    listening = socket.socket(fileno=args.fd)
    ask_for_priority()
    run = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    run(serve(listening, args.upstream, secret.encode()))


if __name__ == "__main__":
    main()
