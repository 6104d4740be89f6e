"""Hostile requests to ``/slack/events`` over real HTTP: oversized, unsigned, mis-signed and
deeply nested bodies are refused cheaply (413, 401, 400; never 500), bodies are never read past
the cap, and a signed click sent while big unsigned bodies stream in is still acknowledged.

No timing assertions: the bounded behaviour is in bytes read and status codes. How fast a click
is acknowledged under such traffic is measured by the benchmark (``python -m bench hostile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.server import MAX_BODY_BYTES, http_app
from bot.transport.linger import LingeringHttpToolsProtocol
from tests.support.bot_harness import (
    ALICE,
    BOT,
    SlackEnv,
    listening_socket,
    review_messages,
    running_slack_env,
    text_of,
)

MiB = 1 << 20
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    async with running_slack_env(database_url) as slack_env:
        yield slack_env


class CountingApp:
    """The bot's ASGI app, counting the body bytes it takes from the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@dataclass
class Counted:
    app: CountingApp
    port: int


@pytest.fixture
async def counted(env: SlackEnv) -> AsyncIterator[Counted]:
    """A second HTTP server in front of the same bot, counting what it reads."""
    sock = listening_socket()
    app = CountingApp(http_app(env.bot))
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", http=LingeringHttpToolsProtocol
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield Counted(app, sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()


async def raw_post(
    port: int,
    headers: dict[str, str | bytes],
    body_parts: int,
    *,
    chunked: bool,
    part: bytes = b"x" * CHUNK,
) -> int | None:
    """POST ``body_parts`` parts of ``part`` over a plain socket, reading the answer while
    sending; returns the status (None if the connection closed without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [b"POST /slack/events HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json"]
    lines += [
        k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) for k, v in headers.items()
    ]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")

    async def send_body() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(body_parts):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    sending = asyncio.create_task(send_body())
    try:
        status_line = await reader.readline()
    except ConnectionError:
        status_line = b""
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(status_line.split()[1]) if status_line.startswith(b"HTTP/1.1 ") else None


SIXTEEN_MIB_PARTS = 16 * MiB // CHUNK


async def test_a_16_mib_body_declared_by_content_length_is_refused_unread(
    counted: Counted,
) -> None:
    status = await raw_post(
        counted.port, {"Content-Length": str(16 * MiB)}, SIXTEEN_MIB_PARTS, chunked=False
    )
    assert status == 413
    assert counted.app.read == 0


async def test_a_16_mib_chunked_body_is_read_only_up_to_the_cap(counted: Counted) -> None:
    status = await raw_post(counted.port, {}, SIXTEEN_MIB_PARTS, chunked=True)
    assert status == 413
    # Read up to the cap plus what the server had buffered then (a socket read or two, the
    # amount depending on scheduling), never the whole 16 MiB.
    assert MAX_BODY_BYTES < counted.app.read <= 2 * MAX_BODY_BYTES, counted.app.read


async def test_unsigned_bodies_under_the_cap_are_refused_before_parsing(env: SlackEnv) -> None:
    nested = b"[" * 200_000 + b"]" * 200_000  # json.loads raises RecursionError on it
    for body in (nested, b"\xff\xfe not utf-8", b'{"type": "url_verification"}'):
        assert (await env.sandbox.send_raw(body, secret="not-the-secret")).status == 401
        missing = {"X-Slack-Signature": "", "X-Slack-Request-Timestamp": ""}
        assert (await env.sandbox.send_raw(body, headers=missing)).status == 401


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        json.dumps({"type": "event_callback", "event": json.loads("[" * 500 + "]" * 500)}).encode(),
        urllib.parse.urlencode({"payload": "{" + '"a":{' * 300 + "}" * 301}).encode(),
        b"\xff\xfe not utf-8",
    ],
    ids=["json-200000-deep", "event-500-deep", "form-payload-300-deep", "not-utf-8"],
)
async def test_signed_bodies_slack_never_sends_get_400(env: SlackEnv, body: bytes) -> None:
    content_type = "application/x-www-form-urlencoded" if body.startswith(b"payload") else None
    response = await env.sandbox.send_raw(body, content_type or "application/json")
    assert response.status == 400, response


CLICK = urllib.parse.urlencode(
    {"payload": json.dumps({"type": "block_actions", "actions": [{"action_id": "x"}]})}
).encode()


@pytest.mark.parametrize(
    "timestamp", ["abc", "12a", "1e9", " 1700000000", "\u0661\u0662\u0663", "9" * 5000, "-1"]
)
async def test_a_timestamp_that_is_not_a_number_gets_401(env: SlackEnv, timestamp: str) -> None:
    """Signed correctly for that timestamp: only the timestamp is wrong."""
    secret = env.sandbox.config.signing_secret.encode()
    for body, content_type in ((CLICK, "application/x-www-form-urlencoded"), (b"{}", None)):
        digest = hmac.new(secret, f"v0:{timestamp}:".encode() + body, hashlib.sha256)
        headers = {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": "v0=" + digest.hexdigest(),
        }
        response = await env.sandbox.send_raw(
            body, content_type or "application/json", headers=headers
        )
        assert response.status == 401, (timestamp, response)


async def test_a_signature_that_is_not_ascii_gets_401(counted: Counted) -> None:
    stamp = str(int(time.time()))
    headers: dict[str, str | bytes] = {
        "Content-Length": "2",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": b"v0=\xff\xfe",
    }
    assert await raw_post(counted.port, headers, 1, chunked=False, part=b"{}") == 401


async def test_signed_url_verification_and_unsigned_ssl_check_still_answer(env: SlackEnv) -> None:
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "ch-9"}).encode()
    response = await env.sandbox.send_raw(body)
    assert (response.status, response.json()) == (200, {"challenge": "ch-9"})
    ssl_check = b"ssl_check=1&token=anything"
    response = await env.sandbox.send_raw(
        ssl_check, "application/x-www-form-urlencoded", headers={"X-Slack-Signature": "v0=0"}
    )
    assert response.status == 200


async def test_a_click_among_big_unsigned_bodies_is_acknowledged(
    env: SlackEnv, counted: Counted
) -> None:
    """The click goes to the bot's own server; the junk to the counting one in front of the
    same app (same event loop, same database), and is refused with 413."""
    sandbox = env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Accra?")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread), 15)
    junk = [
        asyncio.create_task(
            raw_post(
                counted.port,
                {} if chunked else {"Content-Length": str(16 * MiB)},
                SIXTEEN_MIB_PARTS,
                chunked=chunked,
            )
        )
        for chunked in (True, False, True, False)
    ]
    click = await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    assert click.status == 200, click  # within the sandbox's 3 s, as Slack's limit
    assert await asyncio.gather(*junk) == [413] * 4
    assert counted.app.read <= 2 * (2 * MAX_BODY_BYTES)  # two chunked bodies, none declared
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Done." in text_of(m)], 15
    )


def stream_after_the_answer(port: int) -> tuple[bool, bytes]:
    """Declare a 16 MiB body, send 64 KiB of it, wait until the answer is there, then keep
    sending 4 MiB more, as a client streaming its body does; (all sent, the answer read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            b"Content-Length: 16777216\r\n\r\n" + b"x" * 65536
        )
        client.recv(1, socket.MSG_PEEK)
        sent = True
        try:
            for _ in range(64):
                client.sendall(b"x" * 65536)
        except OSError:
            sent = False
        try:
            answer = client.recv(65536)
        except OSError:
            answer = b""
    return sent, answer


async def test_a_413_reaches_a_client_still_sending_its_body(
    counted: Counted,
) -> None:
    """The server closes a refused connection lingering: no reset while the client sends."""
    sent, answer = await asyncio.to_thread(stream_after_the_answer, counted.port)
    assert sent, "the connection was reset while the client was still sending"
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert counted.app.read == 0  # discarded by the server, never handed to the app
