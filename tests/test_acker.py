"""The acknowledging process in front of the bot (``bot.transport.acker``), as ``python -m bot``
serves: a real child process on a real listening socket, the real bot behind it on its Unix
socket, the Slack sandbox sending signed requests.

The flow and hostile-request tests of the in-process server run here again through it (imported
below: pytest collects them in this module, with this module's ``env`` and ``counted``
fixtures), and the tests after them pin what only the acknowledger does: clicks answered
without waiting for the bot, answers in request order on one connection, 503 while the bot
cannot take a click, restarts after a crash, and leaving when the bot's process is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.config import BotSettings
from bot.server import MAX_BODY_BYTES, http_app
from bot.transport.ack_process import (
    STOP_SECONDS,
    AckProcess,
    acknowledging,
    private_socket_path,
    remove_private_socket,
    unix_listening_socket,
)
from bot.transport.acker import KEEP_ALIVE_SECONDS, PRIORITY, REQUEST_SECONDS, SWEEP_SECONDS
from bot.transport.linger import LingeringHttpToolsProtocol
from tests.support.bot_harness import (
    ALICE,
    SlackEnv,
    listening_socket,
    review_messages,
    running_slack_env,
    text_of,
)
from tests.test_bot_flow import (  # noqa: F401  (collected here, through the acknowledger)
    test_edit_shows_inline_errors_then_applies_the_edit,
    test_event_retries_are_handled_once,
    test_feedback_sends_words_back_and_a_new_review_arrives,
    test_forged_or_old_requests_get_401,
    test_mention_review_approve_result,
    test_stale_click_is_told_who_decided_and_when,
)
from tests.test_hostile_requests import (  # noqa: F401  (collected here, through the acknowledger)
    SIXTEEN_MIB_PARTS,
    Counted,
    CountingApp,
    raw_post,
    test_a_16_mib_body_declared_by_content_length_is_refused_unread,
    test_a_413_reaches_a_client_still_sending_its_body,
    test_a_click_among_big_unsigned_bodies_is_acknowledged,
    test_a_signature_that_is_not_ascii_gets_401,
    test_a_timestamp_that_is_not_a_number_gets_401,
    test_signed_bodies_slack_never_sends_get_400,
    test_signed_url_verification_and_unsigned_ssl_check_still_answer,
    test_unsigned_bodies_under_the_cap_are_refused_before_parsing,
)


@pytest.fixture(scope="module")
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    async with running_slack_env(database_url, ack_process=True) as slack_env:
        yield slack_env


class Behind:
    """A bot's app on a Unix socket under uvicorn, which can be stopped and started again."""

    def __init__(self, app: CountingApp) -> None:
        self.app = app
        self.path = private_socket_path()
        self.task: asyncio.Task[None] | None = None
        self.server: uvicorn.Server | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        unix = unix_listening_socket(self.path)
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", http=LingeringHttpToolsProtocol
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[unix]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task
            self.server = self.task = None


@pytest.fixture
async def behind(env: SlackEnv) -> AsyncIterator[Behind]:
    upstream = Behind(CountingApp(http_app(env.bot)))
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()
        remove_private_socket(upstream.path)


@pytest.fixture
async def fronted(env: SlackEnv, behind: Behind) -> AsyncIterator[tuple[AckProcess, int]]:
    """A second acknowledger, in front of a counting app of the same bot."""
    sock = listening_socket()
    async with acknowledging(sock, behind.path, env.bot.settings.signing_secret) as acker:
        yield acker, sock.getsockname()[1]
    sock.close()


@pytest.fixture
async def counted(behind: Behind, fronted: tuple[AckProcess, int]) -> Counted:
    return Counted(behind.app, fronted[1])


async def test_a_16_mib_chunked_body_never_reaches_the_bot(counted: Counted) -> None:
    """The acknowledger reads at most the cap and forwards nothing (the in-process server reads
    up to the cap: ``test_a_16_mib_chunked_body_is_read_only_up_to_the_cap``)."""
    status = await raw_post(counted.port, {}, SIXTEEN_MIB_PARTS, chunked=True)
    assert status == 413
    assert counted.app.read == 0


FORM = "application/x-www-form-urlencoded"


def signed_request(
    secret: str, body: bytes, content_type: str, path: str = "/slack/events"
) -> bytes:
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return (
        f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Type: {content_type}\r\n"
        f"X-Slack-Request-Timestamp: {stamp}\r\nX-Slack-Signature: v0={digest.hexdigest()}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def click_body(action_id: str = "nothing_here") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": ALICE},
        "team": {"id": "T0SANDBOX"},
        "actions": [{"action_id": action_id, "value": "x", "block_id": "b"}],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


async def read_responses(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    """``count`` HTTP/1.1 responses read from one connection: (status, body) each."""
    responses = []
    for _ in range(count):
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        responses.append((status, await reader.readexactly(length)))
    return responses


async def test_pipelined_requests_are_answered_in_order(
    env: SlackEnv, fronted: tuple[AckProcess, int]
) -> None:
    """A forwarded request (the bot answers a challenge), then a click (answered here at
    once), then an unsigned one and a health check, written in one go on one connection:
    the answers come back in that order, each the right one."""
    secret = env.bot.settings.signing_secret
    challenge = json.dumps({"type": "url_verification", "token": "t", "challenge": "ch-7"})
    requests = [
        signed_request(secret, challenge.encode(), "application/json"),
        signed_request(secret, click_body(), "application/x-www-form-urlencoded"),
        signed_request("not-the-secret", b"{}", "application/json"),
        b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n",
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", fronted[1])
    writer.write(b"".join(requests))
    try:
        answers = await asyncio.wait_for(read_responses(reader, 4), 15)
    finally:
        writer.close()
    assert [status for status, _ in answers] == [200, 200, 401, 200]
    assert json.loads(answers[0][1]) == {"challenge": "ch-7"}
    assert answers[1][1] == b""
    assert json.loads(answers[3][1]) == {"status": "ok"}


class HoldingApp(CountingApp):
    """The bot's app, holding every request until ``release`` is set."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.arrived.set()
        await self.release.wait()
        await super().__call__(scope, receive, send)


async def test_a_click_is_acknowledged_before_the_bot_has_even_read_it(env: SlackEnv) -> None:
    """The acknowledgement leaves while the bot's server holds the forwarded click unread (in
    process, the answer is the app's own: it could not come before the app reads the
    request); released, the click reaches the bot and its decision runs."""
    sandbox = env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", "<@U0BOT> weather in Lima?")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread), 15)
    holding = HoldingApp(http_app(env.bot))
    upstream = Behind(holding)
    await upstream.start()
    sock = listening_socket()
    secret = env.bot.settings.signing_secret
    try:
        async with acknowledging(sock, upstream.path, secret):
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
            sandbox.config.interactivity_url = url
            try:
                click = await sandbox.click_button(
                    ALICE, "C0GENERAL", review["ts"], "review_approve"
                )
            finally:
                sandbox.config.interactivity_url = None
            assert click.status == 200
            await asyncio.wait_for(holding.arrived.wait(), 15)
            assert holding.read == 0  # held: the bot has not read the click yet
            holding.release.set()
            await sandbox.wait_for(
                lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Done." in text_of(m)],
                15,
            )
    finally:
        holding.release.set()
        await upstream.stop()
        remove_private_socket(upstream.path)
        sock.close()


HELD_SECONDS = 2.0
"""How long a held click keeps a stopping acknowledger alive in the test below: well inside the
5 s it waits for the bot (and ``STOP_SECONDS``), and long enough for one that did not wait to
have exited."""


async def test_on_sigterm_the_acknowledger_waits_until_the_bot_has_its_clicks(
    env: SlackEnv,
) -> None:
    """A click acknowledged and handed over, the bot holding it unanswered: SIGTERM stops the
    acknowledger accepting, but it stays until the bot has taken the click, then exits 0 (so a
    rolling restart never drops a click Slack was told was received)."""
    assert HELD_SECONDS < 5.0 < STOP_SECONDS
    holding = HoldingApp(http_app(env.bot))
    upstream = Behind(holding)
    await upstream.start()
    sock = listening_socket()
    secret = env.bot.settings.signing_secret
    acker = AckProcess(sock, upstream.path, secret)
    try:
        await acker.start()
        assert acker.process is not None
        assert await send_click(sock.getsockname()[1], secret) == 200
        await asyncio.wait_for(holding.arrived.wait(), 15)
        acker.process.send_signal(signal.SIGTERM)
        exited = asyncio.ensure_future(acker.process.wait())
        done, _ = await asyncio.wait([exited], timeout=HELD_SECONDS)
        assert not done, "the acknowledger left before the bot had taken its click"
        holding.release.set()
        assert await asyncio.wait_for(exited, 15) == 0
        assert holding.read == len(click_body())
    finally:
        holding.release.set()
        await acker.stop()
        await upstream.stop()
        remove_private_socket(upstream.path)
        sock.close()


def raising_priority_is_permitted() -> bool:
    """Whether a process here may lower its niceness to the acknowledger's (root with
    ``CAP_SYS_NICE``), asked of a child so this process keeps its own."""
    import subprocess
    import sys

    code = f"import os; os.setpriority(os.PRIO_PROCESS, 0, {PRIORITY})"
    return (
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode
        == 0
    )


async def test_the_acknowledger_runs_at_a_higher_priority_where_permitted(
    fronted: tuple[AckProcess, int],
) -> None:
    """Niceness -5 where the machine allows it; elsewhere the bot's own, as the docs say."""
    acker, _ = fronted
    assert acker.process is not None
    expected = PRIORITY if raising_priority_is_permitted() else os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, acker.process.pid) == expected


async def send_click(port: int, secret: str) -> int | None:
    """One signed click on a new connection; the status answered (None: no answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(signed_request(secret, click_body(), "application/x-www-form-urlencoded"))
    try:
        [(status, _)] = await asyncio.wait_for(read_responses(reader, 1), 15)
        return status
    except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
        return None
    finally:
        writer.close()


async def until_status(port: int, secret: str, wanted: int, within: float = 15.0) -> None:
    """Send clicks until one is answered ``wanted`` (bounded): the acknowledger notices a
    change of the bot's socket when its connection closes or reconnects."""
    deadline = asyncio.get_running_loop().time() + within
    while (status := await send_click(port, secret)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"still {status}, not {wanted}"
        await asyncio.sleep(0.05)


async def test_no_click_is_acknowledged_while_the_bot_cannot_take_it(
    env: SlackEnv, behind: Behind, fronted: tuple[AckProcess, int]
) -> None:
    """With the bot's server gone, a click gets 503 (Slack shows the person an error and
    nothing is lost); once it is back, clicks are acknowledged again."""
    secret = env.bot.settings.signing_secret
    port = fronted[1]
    assert await send_click(port, secret) == 200
    await behind.stop()
    await until_status(port, secret, 503)
    await behind.start()
    await until_status(port, secret, 200)


async def test_a_crashed_acknowledger_is_restarted_on_the_same_port(
    env: SlackEnv, fronted: tuple[AckProcess, int]
) -> None:
    acker, port = fronted
    assert acker.process is not None
    first = acker.process.pid
    os.kill(first, signal.SIGKILL)
    await until_status(port, env.bot.settings.signing_secret, 200)
    assert acker.process.pid != first
    assert acker.starts == 2


async def test_the_acknowledger_leaves_when_the_bots_process_is_gone(
    env: SlackEnv, behind: Behind
) -> None:
    """Its standard input is the bot's pipe: at end-of-file (the bot's process exited, however
    it exited) it stops, so no orphan keeps the port and acknowledges into nothing."""
    sock = listening_socket()
    acker = AckProcess(sock, behind.path, env.bot.settings.signing_secret)
    await acker.start()
    try:
        assert acker.process is not None and acker.process.stdin is not None
        acker.process.stdin.close()  # what the bot's exit does to the pipe
        assert await asyncio.wait_for(acker.process.wait(), 15) == 0
    finally:
        await acker.stop()
        sock.close()


async def test_a_slow_sender_is_answered_in_order_with_the_bot_seeing_one_request(
    env: SlackEnv, fronted: tuple[AckProcess, int], behind: Behind
) -> None:
    """A request whose body arrives in pieces is forwarded once, whole."""
    secret = env.bot.settings.signing_secret
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "slow"}).encode()
    request = signed_request(secret, body, "application/json")
    reader, writer = await asyncio.open_connection("127.0.0.1", fronted[1])
    before = behind.app.read
    try:
        for start in range(0, len(request), 7):
            writer.write(request[start : start + 7])
            await writer.drain()
        [(status, answer)] = await asyncio.wait_for(read_responses(reader, 1), 15)
    finally:
        writer.close()
    assert (status, json.loads(answer)) == (200, {"challenge": "slow"})
    assert behind.app.read - before == len(body)


async def test_a_body_over_the_cap_by_one_byte_is_refused_and_at_the_cap_is_not(
    counted: Counted,
) -> None:
    """The cap is the in-process server's (``MAX_BODY_BYTES``), to the byte."""
    for size, expected in ((MAX_BODY_BYTES + 1, 413), (MAX_BODY_BYTES, 401)):
        headers: dict[str, str | bytes] = {"Content-Length": str(size)}
        status = await raw_post(counted.port, headers, 1, chunked=False, part=b"x" * size)
        assert status == expected, size


def test_the_acknowledger_imports_nothing_heavy() -> None:
    """It must start in a fraction of a second: no Bolt, Starlette, uvicorn or LangGraph."""
    import subprocess
    import sys

    code = (
        "import sys, bot.transport.acker\n"
        "heavy = [m for m in ('slack_bolt', 'starlette', 'uvicorn', 'langgraph', 'psycopg')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=60,
    )
    assert out.stdout.strip() == ""


def test_the_acknowledger_is_on_unless_turned_off() -> None:
    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    assert BotSettings.from_env(base).ack_process
    assert not BotSettings.from_env({**base, "ACK_PROCESS": "false"}).ack_process
    built = BotSettings(bot_token="xoxb-1", signing_secret="s")  # in code (tests): in process
    assert not built.ack_process


async def closed_by_the_acknowledger(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the connection reaches end-of-file within ``within`` seconds, reading (and
    discarding) whatever arrives before it."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_an_idle_connection_is_closed_after_its_keep_alive(
    env: SlackEnv, fronted: tuple[AckProcess, int]
) -> None:
    """A connection that was answered and then sends nothing is closed once its keep-alive
    (``KEEP_ALIVE_SECONDS``) runs out, as uvicorn closes it, so idle clients hold no
    descriptors; one that never sent anything is closed alike."""
    reader, writer = await asyncio.open_connection("127.0.0.1", fronted[1])
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", fronted[1])
    try:
        request = signed_request(env.bot.settings.signing_secret, click_body(), FORM)
        writer.write(request)
        [(status, _)] = await asyncio.wait_for(read_responses(reader, 1), 15)
        assert status == 200
        within = KEEP_ALIVE_SECONDS + SWEEP_SECONDS + 15
        closed = list(
            await asyncio.gather(
                closed_by_the_acknowledger(reader, within),
                closed_by_the_acknowledger(silent_reader, within),
            )
        )
        assert closed == [True, True]
    finally:
        writer.close()
        silent_writer.close()


async def test_a_request_that_never_arrives_whole_gets_408_and_never_reaches_the_bot(
    env: SlackEnv, counted: Counted
) -> None:
    """A sender that stops inside its headers or inside its body is answered 408 once
    ``REQUEST_SECONDS`` pass, the connection is closed, and the bot reads nothing of it."""
    body = click_body()
    whole = signed_request(env.bot.settings.signing_secret, body, FORM)
    cut_in_headers = whole[: whole.index(b"\r\n\r\n") - 5]
    cut_in_body = whole[: len(whole) - len(body) // 2]

    async def answered(sent: bytes) -> tuple[int, bool]:
        reader, writer = await asyncio.open_connection("127.0.0.1", counted.port)
        try:
            writer.write(sent)
            within = REQUEST_SECONDS + SWEEP_SECONDS + 15
            [(status, _)] = await asyncio.wait_for(read_responses(reader, 1), within)
            return status, await closed_by_the_acknowledger(reader, 15)
        finally:
            writer.close()

    answers = list(await asyncio.gather(answered(cut_in_headers), answered(cut_in_body)))
    assert answers == [(408, True), (408, True)]
    assert counted.app.read == 0
