"""Tools for chaos tests: the bot as a real process that can be killed, a loopback HTTP
forwarder (round-robin over replicas, or holding chosen responses), a private database per test,
and readers of what people see in the sandbox."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
import psycopg
from aiohttp import web

from bot.config import TURN_LIMIT_VARIABLES
from sandbox.config import SandboxConfig
from sandbox.server import Sandbox, running_sandbox

ROOT = Path(__file__).resolve().parent.parent.parent
HOP_BY_HOP = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_env(**overrides: str) -> dict[str, str]:
    """The parent's environment without Slack, Anthropic or database settings, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_"))}
    for name in ("DATABASE_URL", "APPROVERS", "POLICY_FILE", "AGENT_TOOL_MODULES"):
        env.pop(name, None)
    no_turn_limits = dict.fromkeys(TURN_LIMIT_VARIABLES, "0")  # 100 flows from one person
    return {**env, **no_turn_limits, **overrides}


# -- a private database per test ----------------------------------------------------------------


def with_dbname(url: str, dbname: str) -> str:
    """The same server, another database (URL or key=value conninfo)."""
    if "://" in url:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path=f"/{dbname}"))
    return psycopg.conninfo.make_conninfo(url, dbname=dbname)


@asynccontextmanager
async def fresh_database(server_url: str, prefix: str = "chaos") -> AsyncIterator[str]:
    """A new, empty database on the test server, dropped afterwards, so background sweepers of
    the bots under test never touch other tests' rows (and theirs never touch ours)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_dbname(server_url, name)
    finally:
        async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def scalar(url: str, sql: str, params: Sequence[Any] = ()) -> Any:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (await conn.execute(sql, tuple(params))).fetchone()
    return None if row is None else row[0]


# -- the bot as a real process -------------------------------------------------------------------


class BotProcess:
    """``python -m bot`` with a given environment; killed with SIGKILL, restarted at will."""

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.port = port
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.kills = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.base}/slack/events"

    async def start(self, ready_within: float = 60.0) -> None:
        with self.log_path.open("a") as log:
            log.write(f"\n===== start {self.starts} =====\n")
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=ROOT, env=self.env, stdout=log, stderr=log
            )
        self.starts += 1
        await self.wait_ready(ready_within)

    async def wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process is None or self.process.returncode is not None:
                    raise AssertionError(f"bot exited early:\n{self.log_tail()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the bot was not ready within {within}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, exactly like a crashed host."""
        if self.process is not None and self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.kills += 1

    async def wait_dead(self) -> None:
        if self.process is not None:
            await asyncio.wait_for(self.process.wait(), 30)

    async def stop(self) -> int | None:
        """SIGTERM and wait (bounded); SIGKILL if it hangs. The exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 40)
            except TimeoutError:
                self.kill()
                await self.wait_dead()
        return self.process.returncode

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""


# -- a loopback HTTP forwarder ----------------------------------------------------------------

Hold = Callable[[str, bytes, bytes], Awaitable[None]]


class Forwarder:
    """Forwards each request's raw bytes and headers (Slack's signature headers included) to
    the next target in turn, and the answer back. ``hold(path, request, response)`` may delay
    an answer after the target produced it (to kill a process between an effect and its
    acknowledgement)."""

    def __init__(self, targets: Sequence[str], hold: Hold | None = None) -> None:
        self.targets = list(targets)
        self.hold = hold
        self.hits = [0] * len(self.targets)
        self._turn = itertools.count()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Forwarder:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        index = next(self._turn) % len(self.targets)
        self.hits[index] += 1
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        target = self.targets[index].rstrip("/") + request.path_qs
        try:
            async with self._session.request(
                request.method, target, data=body, headers=headers
            ) as upstream:
                answer = await upstream.read()
                status = upstream.status
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        except aiohttp.ClientError:
            return web.Response(status=502, text="upstream unreachable")
        if self.hold is not None:
            await self.hold(request.path, body, answer)
        return web.Response(body=answer, status=status, headers=out)


class HoldFirst:
    """A ``Forwarder`` hold: delays the Web API answer to the first call of one method until
    ``release`` is set (at most 30 s), and sets ``held`` when it starts holding, so a test can
    kill the bot while that call is in flight."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self, path: str, request: bytes, response: bytes) -> None:
        if path.endswith(f"/{self.method}") and not self.held.is_set():
            self.held.set()
            await asyncio.wait_for(self.release.wait(), 30)  # until the bot was killed


def sandbox_for_bot(port: int, retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)) -> SandboxConfig:
    """A sandbox that delivers events to a bot process listening on ``port``, with Slack's
    retry policy shortened to ``retry_delays``, and the bot's own posts not delivered back (the
    bot ignores them; this spares the CPU)."""
    return SandboxConfig(
        port=0,
        bot_url=f"http://127.0.0.1:{port}/slack/events",
        retry_delays=retry_delays,
        deliver_bot_messages=False,
    )


def quick_recovery_env(
    config: SandboxConfig, api_url: str, db_url: str, port: int, **extra: str
) -> dict[str, str]:
    """The bot's environment for kill tests: Slack through ``api_url`` (a forwarder or the
    sandbox), and recovery timings short enough that a killed process's work is taken over
    within seconds."""
    return bot_env(
        SLACK_BOT_TOKEN=config.bot_token,
        SLACK_SIGNING_SECRET=config.signing_secret,
        SLACK_API_URL=f"{api_url}/api/",
        DATABASE_URL=db_url,
        HOST="127.0.0.1",
        PORT=str(port),
        SWEEP_SECONDS="0.5",
        RECOVER_AFTER_SECONDS="2",
        THREAD_LEASE_SECONDS="2",
        LOG_FORMAT="text",
        **extra,
    )


# -- reading what people see ---------------------------------------------------------------------


def buttons_of(message: Mapping[str, Any]) -> dict[str, str]:
    """action_id -> value of a message's buttons (empty once decided)."""
    found: dict[str, str] = {}
    for block in message.get("blocks") or []:
        if block.get("type") == "actions":
            for element in block.get("elements") or []:
                if element.get("type") == "button":
                    found[str(element.get("action_id"))] = str(element.get("value", ""))
    return found


def bot_replies(sandbox: Sandbox, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.replies(channel, thread_ts) if m.get("user") == "U0BOT"]


REVIEW_LABELS = (
    "Approval needed",
    "Approved",
    "Edited and approved",
    "Sent back with feedback",
    "Expired",
)


def review_of(sandbox: Sandbox, channel: str, thread_ts: str, tool: str) -> dict[str, Any] | None:
    """The (first) review message of ``tool`` in a thread, pending or decided."""
    wanted = {f"{label}: {tool}" for label in REVIEW_LABELS}
    for message in bot_replies(sandbox, channel, thread_ts):
        if message.get("text") in wanted:
            return message
    return None


async def bounded_wait(probe: Callable[[], Any], within: float, every: float = 0.05) -> Any:
    """``probe()`` once truthy, or its last (falsy) value after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(every)


@dataclass
class Replicas:
    """Two ``python -m bot`` replicas on one fresh database behind a round-robin forwarder,
    with the sandbox as Slack."""

    sandbox: Sandbox
    front: Forwarder
    bots: list[BotProcess]
    db_url: str


@asynccontextmanager
async def running_replicas(
    server_url: str, logs: Path, prefix: str = "replicas"
) -> AsyncIterator[Replicas]:
    """Start both replicas (their migrations race, as on a deploy); on leaving, let the
    sandbox settle, stop them, and require that both exited cleanly."""
    ports = [free_port(), free_port()]
    async with fresh_database(server_url, prefix) as db_url:
        front = Forwarder([f"http://127.0.0.1:{port}" for port in ports])
        async with front:
            config = SandboxConfig(
                port=0,
                bot_url=f"{front.url}/slack/events",
                retry_delays=(0.5, 1.0, 2.0),
                deliver_bot_messages=False,
            )
            async with running_sandbox(config) as sandbox:
                bots = [
                    BotProcess(
                        bot_env(
                            SLACK_BOT_TOKEN=config.bot_token,
                            SLACK_SIGNING_SECRET=config.signing_secret,
                            SLACK_API_URL=sandbox.api_url,
                            DATABASE_URL=db_url,
                            DATABASE_POOL_SIZE="8",
                            HOST="127.0.0.1",
                            PORT=str(port),
                        ),
                        logs / f"bot-{index}.log",
                        port,
                    )
                    for index, port in enumerate(ports)
                ]
                await asyncio.gather(*(bot.start() for bot in bots))
                try:
                    yield Replicas(sandbox, front, bots, db_url)
                finally:
                    await sandbox.settle(5)
                    codes = await asyncio.gather(*(bot.stop() for bot in bots))
                assert codes == [0, 0], [bot.log_tail() for bot in bots]
