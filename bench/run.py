"""One benchmark run: start everything, measure each figure, stop everything.

The bot runs in its own process (``bench.bot_process``) so its memory and CPU are its own; this
process plays Slack: it sends signed requests to the bot's ``/slack/events`` and serves the Web
API stand-in the bot calls back (``bench.slack_stub``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.bare import bare_langgraph
from bench.fakes import TOOL_NAME, InstantModel, bench_registry
from bench.slack_stub import BOT_USER, TEAM_ID, PostedReview, SlackStub
from bot import home
from bot.blocks import ACTIONS_BLOCK, APPROVE
from bot.migrations import migrate_bot
from bot.startup import tune_gc
from graph import AgentService, AgentSettings, RunOutcome, open_agent
from graph.db import Pool, open_pool, start_embedded_postgres, stop_embedded_postgres

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGNING_SECRET = "bench-signing-secret"
CHANNEL = "C0BENCH"
REQUESTER = "U0ALICE"
APPROVER = "U0BOB"
BOT_POOL_SIZE = 20  # DATABASE_POOL_SIZE's default: the bot's agent pool, and bare LangGraph's
HUMAN_TEXT = "Please record this note. " + "x" * 1000  # ~1 KB user messages, as in REFERENCE


@dataclass(frozen=True)
class Sizes:
    sequential: int
    rounds_50: int
    rounds_200: int
    sustained: int
    sustained_concurrency: int
    turns: int
    resume_samples: int
    pending_rows: int
    traffic: int
    listings: int
    homes: int
    hostile_clicks: int = 20

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            sequential=100,
            rounds_50=4,
            rounds_200=2,
            sustained=1000,
            sustained_concurrency=32,
            turns=200,
            resume_samples=40,
            pending_rows=100_000,
            traffic=100,
            listings=100,
            homes=50,
            hostile_clicks=100,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            sequential=20,
            rounds_50=1,
            rounds_200=1,
            sustained=200,
            sustained_concurrency=32,
            turns=40,
            resume_samples=15,
            pending_rows=10_000,
            traffic=30,
            listings=20,
            homes=10,
            hostile_clicks=10,
        )


@dataclass
class Results:
    """Raw measurements, in seconds, bytes and kB; the report turns them into figures."""

    sizes: Sizes
    ack: dict[int, list[float]] = field(default_factory=dict)
    applied: list[float] = field(default_factory=list)
    sustained_per_second: float = 0.0
    bare_sustained_per_second: float = 0.0
    cpu_per_approval: float = math.nan
    bare: list[float] = field(default_factory=list)
    resume_short: list[float] = field(default_factory=list)
    resume_long: list[float] = field(default_factory=list)
    stored: dict[int, int] = field(default_factory=dict)
    rss_kb: dict[int, int] = field(default_factory=dict)
    listing: list[float] = field(default_factory=list)
    first_listing: list[float] = field(default_factory=list)
    home: list[float] = field(default_factory=list)
    hostile_ack: list[float] = field(default_factory=list)
    hostile_refused: int = 0
    notes: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- Slack-shaped requests ---------------------------------------------------------------------


def signed(body: bytes, content_type: str) -> dict[str, str]:
    timestamp = str(int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def mention_body(thread_ts: str, text: str = HUMAN_TEXT) -> bytes:
    event = {
        "type": "app_mention",
        "user": REQUESTER,
        "text": f"<@{BOT_USER}> {text}",
        "ts": thread_ts,
        "channel": CHANNEL,
        "event_ts": thread_ts,
        "team": TEAM_ID,
    }
    return event_callback(event)


def event_callback(event: dict[str, Any]) -> bytes:
    """The Events API envelope Slack wraps every event in."""
    return json.dumps(
        {
            "token": "bench",
            "team_id": TEAM_ID,
            "api_app_id": "A0BENCH",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:16]}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER, "is_bot": True}],
        }
    ).encode()


def home_opened_body(user: str) -> bytes:
    event = {
        "type": "app_home_opened",
        "user": user,
        "channel": "D0BENCH",
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }
    return event_callback(event)


def click_body(review: PostedReview) -> bytes:
    """A block_actions payload as Slack sends it for a click on Approve."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": APPROVER, "username": "bob", "name": "bob", "team_id": TEAM_ID},
        "api_app_id": "A0BENCH",
        "token": "bench",
        "container": {
            "type": "message",
            "message_ts": review.ts,
            "channel_id": review.channel,
            "is_ephemeral": False,
            "thread_ts": review.thread_ts,
        },
        "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex}",
        "team": {"id": TEAM_ID, "domain": "bench"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": review.channel, "name": "bench"},
        "message": {
            "type": "message",
            "user": BOT_USER,
            "ts": review.ts,
            "thread_ts": review.thread_ts,
            "text": "Approval needed",
            "blocks": review.blocks,
        },
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{TEAM_ID}/1/bench",
        "actions": [
            {
                "action_id": APPROVE,
                "block_id": ACTIONS_BLOCK,
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "value": review.ref,
                "style": "primary",
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


# -- the environment ---------------------------------------------------------------------------


@dataclass
class Env:
    database_url: str
    stub: SlackStub
    http: aiohttp.ClientSession
    bot_url: str
    bot_pid: int
    text: str = HUMAN_TEXT
    """What each mention says (the agent proposes one call for it)."""
    _thread_seq: int = 0

    def next_thread_ts(self) -> str:
        self._thread_seq += 1
        return f"{int(time.time())}.{self._thread_seq:06d}"

    async def create_reviews(self, count: int, concurrency: int = 16) -> list[PostedReview]:
        """Mention the bot ``count`` times; each mention becomes one pending review message."""
        gate = asyncio.Semaphore(concurrency)

        async def one() -> PostedReview:
            async with gate:
                thread_ts = self.next_thread_ts()
                body = mention_body(thread_ts, self.text)
                headers = signed(body, "application/json")
                async with self.http.post(self.bot_url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"the bot answered an event with {response.status}")
                return await self.stub.review_posted(thread_ts)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def click(self, review: PostedReview) -> tuple[float, float]:
        """Approve one review: (seconds to the HTTP answer, seconds to the decision applied)."""
        body = click_body(review)
        headers = signed(body, "application/x-www-form-urlencoded")
        started = time.perf_counter()
        async with self.http.post(self.bot_url, data=body, headers=headers) as response:
            await response.read()
            acked = time.perf_counter()
            if response.status != 200:
                raise RuntimeError(f"the bot answered a click with {response.status}")
        applied = await self.stub.applied(review)
        return acked - started, applied - started

    async def open_home(self, user: str) -> float:
        """Open ``user``'s App Home: seconds from the event to the bot's views.publish."""
        body = home_opened_body(user)
        headers = signed(body, "application/json")
        started = time.perf_counter()
        async with self.http.post(self.bot_url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"the bot answered app_home_opened with {response.status}")
        return await self.stub.home_published(user) - started

    async def warm_connections(self, count: int) -> None:
        base = self.bot_url.rsplit("/slack/", 1)[0]

        async def one() -> None:
            async with self.http.get(f"{base}/healthz") as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(count)))

    def cpu_seconds(self) -> float:
        """User + system CPU time the bot's process and its children (the acknowledging
        process) have used so far."""
        return sum(process_cpu_seconds(pid) for pid in process_tree(self.bot_pid))

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.bot_pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS for the bot process")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (``/proc/<pid>/task/<tid>/children``)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += process_tree(int(child))
    return found


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time one process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def database(url: str | None) -> AsyncIterator[str]:
    if url:
        yield url
        return
    data_dir = Path(tempfile.mkdtemp(prefix="approval-bot-bench-pg-"))
    os.chmod(data_dir, 0o755)  # the server runs as another system user when we are root
    try:
        yield await asyncio.to_thread(start_embedded_postgres, data_dir)
    finally:
        await asyncio.to_thread(stop_embedded_postgres, data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@asynccontextmanager
async def bot_process(
    database_url: str, api_url: str, agent_url: str | None = None
) -> AsyncIterator[tuple[int, int]]:
    """Start ``bench.bot_process``; yield (pid, port); interrupt it afterwards. ``agent_url``:
    the bot drives the graph on that LangGraph Server (``AGENT_URL``)."""
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": database_url,
        "BENCH_SLACK_API_URL": api_url,
        "BENCH_SIGNING_SECRET": SIGNING_SECRET,
        **({"BENCH_AGENT_URL": agent_url} if agent_url else {}),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bot_process",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"the bot did not start (it said {line!r})")
        yield process.pid, int(line.split()[1])
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # uvicorn re-raises it: a clean KeyboardInterrupt
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


@asynccontextmanager
async def environment(
    database_url: str | None,
    *,
    agent_url: str | None = None,
    text: str = HUMAN_TEXT,
    tool: str = TOOL_NAME,
) -> AsyncIterator[Env]:
    """``agent_url``, ``text``, ``tool``: for a graph on LangGraph Server (``bench.remote``),
    what people ask it and the tool it proposes."""
    stub = SlackStub(tool)
    await stub.start()
    try:
        async with (
            database(database_url) as url,
            bot_process(url, stub.api_url, agent_url) as (pid, port),
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=3),  # uvicorn's is 5 s
                timeout=aiohttp.ClientTimeout(total=60),
            ) as http,
        ):
            yield Env(url, stub, http, f"http://127.0.0.1:{port}/slack/events", pid, text)
    finally:
        await stub.stop()


# -- the measurements --------------------------------------------------------------------------


async def approve_all(env: Env, reviews: list[PostedReview], concurrency: int) -> list[float]:
    gate = asyncio.Semaphore(concurrency)

    async def one(review: PostedReview) -> float:
        async with gate:
            return (await env.click(review))[1]

    return list(await asyncio.gather(*(one(r) for r in reviews)))


async def measure_clicks(env: Env, sizes: Sizes, results: Results) -> None:
    log("warm-up")
    await env.warm_connections(220)
    await approve_all(env, await env.create_reviews(20), 4)

    log(f"acknowledgement, 1 concurrent, and bare LangGraph resumes ({sizes.sequential} each)")
    acks: list[float] = []
    async with bare_langgraph(env.database_url) as bare:
        for review in await env.create_reviews(sizes.sequential):
            ack, applied = await env.click(review)
            acks.append(ack)
            results.applied.append(applied)
            # paired with each click, so both see the same machine load
            results.bare.append(await bare.sample(HUMAN_TEXT))
    results.ack[1] = acks

    for level, rounds in ((50, sizes.rounds_50), (200, sizes.rounds_200)):
        log(f"acknowledgement, {level} concurrent ({rounds} round(s))")
        acks = []
        for _ in range(rounds):
            reviews = await env.create_reviews(level)
            await asyncio.sleep(0.2)  # let the bot finish posting before the burst
            acks.extend(await burst(env, reviews))
        results.ack[level] = acks


async def burst(env: Env, reviews: list[PostedReview]) -> list[float]:
    """Click Approve on every review at once; each click's seconds to its HTTP answer.

    Slack's clicks come from many machines; here one process sends them all, so it does its own
    work first: every request is built and signed, and a connection opened for each (Slack keeps
    connections open too), before the first is written; then all are written one after the
    other with nothing in between (a few microseconds each), each timed from its own write.
    Through ``aiohttp`` the requests left over 200-300 ms of this process's own CPU work
    (building each request, then writing its body in a task of its own), which the figure
    counted as the bot's.
    """
    url = urllib.parse.urlsplit(env.bot_url)
    host, port, path = url.hostname or "127.0.0.1", url.port, url.path
    requests = []
    for review in reviews:
        body = click_body(review)
        headers = signed(body, "application/x-www-form-urlencoded")
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        requests.append(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    connections = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in reviews))
    started: list[float] = []
    for (_, writer), request in zip(connections, requests, strict=True):
        started.append(time.perf_counter())
        writer.write(request)
    try:
        answered = await asyncio.gather(*(answer_time(reader) for reader, _ in connections))
        await asyncio.gather(*(env.stub.applied(review) for review in reviews))
    finally:
        for _, writer in connections:
            writer.close()
    return [done - start for start, done in zip(started, answered, strict=True)]


async def answer_time(reader: asyncio.StreamReader) -> float:
    """Read one HTTP/1.1 response (status 200 required, body by Content-Length); when it was
    read whole."""
    status = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    done = time.perf_counter()
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the bot answered a click with {status!r}")
    return done


async def measure_sustained(env: Env, sizes: Sizes, results: Results) -> None:
    log(f"sustained approvals ({sizes.sustained} reviews, {sizes.sustained_concurrency} at once)")
    reviews = await env.create_reviews(sizes.sustained)
    await asyncio.sleep(0.2)
    started, cpu = time.perf_counter(), env.cpu_seconds()
    await approve_all(env, reviews, sizes.sustained_concurrency)
    results.sustained_per_second = len(reviews) / (time.perf_counter() - started)
    results.cpu_per_approval = (env.cpu_seconds() - cpu) / len(reviews)

    log(
        f"bare LangGraph sustained resumes ({sizes.sustained} threads,"
        f" {sizes.sustained_concurrency} at once)"
    )
    async with bare_langgraph(env.database_url, max_size=BOT_POOL_SIZE) as bare:
        results.bare_sustained_per_second = await bare.sustained(
            HUMAN_TEXT, sizes.sustained, sizes.sustained_concurrency
        )


HOSTILE_BODY_BYTES = 16 << 20
HOSTILE_SENDERS = 4


async def send_unsigned_junk(port: int, chunked: bool) -> int | None:
    """One unsigned 16 MiB POST to /slack/events, streamed as fast as the bot takes it (a
    declared Content-Length, or chunked); the status the bot answered (None: no answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % (16 << 20)
    writer.write(b"POST /slack/events HTTP/1.1\r\nHost: bench\r\n%s\r\n\r\n" % framing)
    part = b"x" * 65536

    async def stream() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(HOSTILE_BODY_BYTES // len(part)):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                await writer.drain()

    sending = asyncio.create_task(stream())
    try:
        line = await reader.readline()
    except ConnectionError:
        line = b""
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None


async def measure_hostile(env: Env, sizes: Sizes, results: Results) -> None:
    """Clicks acknowledged while unsigned 16 MiB bodies keep arriving beside them."""
    log(f"acknowledgement beside unsigned 16 MiB bodies ({sizes.hostile_clicks} clicks)")
    port = int(env.bot_url.rsplit(":", 1)[1].split("/", 1)[0])
    reviews = await env.create_reviews(sizes.hostile_clicks)
    stop = asyncio.Event()

    async def sender(chunked: bool) -> None:
        while not stop.is_set():
            if await send_unsigned_junk(port, chunked) == 413:
                results.hostile_refused += 1

    senders = [asyncio.create_task(sender(i % 2 == 0)) for i in range(HOSTILE_SENDERS)]
    try:
        for review in reviews:
            results.hostile_ack.append((await env.click(review))[0])
    finally:
        stop.set()
        await asyncio.gather(*senders, return_exceptions=True)


async def stored_bytes(pool: Pool, thread_id: str) -> int:
    """Bytes stored for one thread across the checkpointer's three tables (as stored: TOASTed
    values count compressed, as PostgreSQL keeps them)."""
    total = 0
    async with pool.connection() as conn:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            row = await (
                await conn.execute(
                    f"SELECT COALESCE(SUM(pg_column_size(t.*)), 0) AS n FROM {table} t "
                    "WHERE thread_id = %s",
                    (thread_id,),
                )
            ).fetchone()
            total += int(row["n"]) if row else 0
    return total


async def one_turn(service: AgentService, thread_id: str) -> float:
    """Start a turn (untimed) and approve its review; seconds the approval took."""
    outcome = await service.start_turn(thread_id, HUMAN_TEXT, user=REQUESTER)
    if not isinstance(outcome, RunOutcome) or len(outcome.pending) != 1:
        raise RuntimeError(f"expected one pending review, got {outcome!r}")
    started = time.perf_counter()
    answered = await service.answer(
        thread_id, outcome.pending[0].interrupt_id, {"action": "continue", "by": APPROVER}
    )
    elapsed = time.perf_counter() - started
    if not isinstance(answered, RunOutcome) or not answered.tool_results:
        raise RuntimeError(f"the approval did not run the tool: {answered!r}")
    return elapsed


async def measure_threads(env: Env, sizes: Sizes, results: Results) -> None:
    settings = AgentSettings(database_url=env.database_url, pool_max_size=4)
    async with open_agent(settings, model=InstantModel(), registry=bench_registry()) as service:
        await migrate_bot(service.pool)
        for _ in range(3):
            await one_turn(service, f"bench-warm-{uuid.uuid4().hex}")
        log(f"a {sizes.turns}-turn thread")
        thread_id = f"bench-long-{uuid.uuid4().hex}"
        marks = (sizes.turns // 4, sizes.turns // 2, sizes.turns)
        window = min(10, sizes.turns // 4)
        sampled: list[int] = []
        for turn in range(1, sizes.turns + 1):
            await one_turn(service, thread_id)
            if any(mark - window < turn <= mark for mark in marks):
                # pruning runs every few turns, so storage is a sawtooth: average a window
                sampled.append(await stored_bytes(service.pool, thread_id))
            if turn in marks:
                results.stored[turn] = sum(sampled) // len(sampled)
                sampled = []
                log(f"  {turn} turns: {results.stored[turn]:,} bytes")

        log(f"resume on 1-turn threads and on the long thread ({sizes.resume_samples} each)")
        for _ in range(sizes.resume_samples):  # interleaved, so both see the same load
            results.resume_short.append(await one_turn(service, f"bench-1-{uuid.uuid4().hex}"))
            results.resume_long.append(await one_turn(service, thread_id))


BULK_PENDING = """
INSERT INTO slack_reviews (ref, thread_id, interrupt_id, team_id, channel_id, thread_ts,
                           message_ts, tool_name, request, status, created_at)
SELECT 'bench-pending-' || g, 'bench-pending-thread-' || g, 'interrupt-' || g, %(team)s,
       %(channel)s, '1700000000.' || g, '1700000001.' || g, %(tool)s,
       jsonb_build_object(
           'question', 'Is this correct?',
           'tool_call', jsonb_build_object(
               'name', %(tool)s::text, 'args', jsonb_build_object('note', 'bulk ' || g),
               'id', 'toolu_bulk_' || g),
           'tool', jsonb_build_object(
               'name', %(tool)s::text, 'description', 'Do nothing.', 'args_schema', '{}'::jsonb),
           'requested_by', 'UBULK' || (g %% 1000)::text),
       'pending', now() - make_interval(secs => g)
FROM generate_series(1, %(rows)s) AS g
"""


async def timed_scan(pool: Pool) -> float:
    """Seconds for the scan every App Home open reads (``bot.home.pending_reviews``)."""
    started = time.perf_counter()
    rows = await home.pending_reviews(pool)
    elapsed = time.perf_counter() - started
    if len(rows) != home.SCAN_LIMIT:
        raise RuntimeError(f"expected {home.SCAN_LIMIT} pending reviews, got {len(rows)}")
    return elapsed


@contextlib.contextmanager
def collector_as_in_the_bot() -> Iterator[None]:
    """The bot process's garbage-collector settings (``bot.startup.tune_gc``) while the App
    Home's scan is timed in this process, then Python's defaults again. With the defaults, a
    full collection of this process's ~180,000 objects (its libraries) ran inside some scans
    (about 20 ms each, more when loaded), which the bot, its start-up objects frozen, does not."""
    threshold = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def measure_pending(env: Env, sizes: Sizes, results: Results) -> None:
    async def traffic() -> None:
        """Approvals, and App Homes (each reads pending reviews)."""
        await approve_all(env, await env.create_reviews(sizes.traffic), 16)
        for index in range(sizes.homes):
            await env.open_home(f"UBULK{index}")

    log("bot memory with no bulk pending reviews")
    await traffic()
    await traffic()
    await asyncio.sleep(0.5)
    results.rss_kb[0] = env.rss_kb()

    log(f"inserting {sizes.pending_rows:,} pending reviews")
    async with open_pool(env.database_url, max_size=2) as pool:
        async with pool.connection() as conn:
            await conn.execute(
                BULK_PENDING,
                {
                    "team": TEAM_ID,
                    "channel": CHANNEL,
                    "tool": TOOL_NAME,
                    "rows": sizes.pending_rows,
                },
            )
            await conn.execute("ANALYZE slack_reviews")
        try:
            log("bot memory with them")
            await traffic()
            await asyncio.sleep(0.5)
            results.rss_kb[sizes.pending_rows] = env.rss_kb()

            log(f"App Home with them ({sizes.listings} opens)")
            for index in range(sizes.listings):
                results.home.append(await env.open_home(f"UBULK{index % 1000}"))

            log(f"the App Home's scan of pending reviews ({sizes.listings} samples each)")
            with collector_as_in_the_bot():
                for index in range(sizes.listings + 5):  # as every open after a process's first
                    seconds = await timed_scan(pool)
                    if index >= 5:  # the first five warm the pool and the latest scan
                        results.listing.append(seconds)
                for _ in range(sizes.listings):  # a process's first open: nothing to reuse
                    home.LATEST_SCAN.forget()
                    results.first_listing.append(await timed_scan(pool))
        finally:
            async with pool.connection() as conn:
                await conn.execute(
                    "DELETE FROM slack_reviews WHERE ref LIKE %s", ("bench-pending-%",)
                )


Phase = Callable[[Env, Sizes, Results], Awaitable[None]]

PHASES: dict[str, Phase] = {
    "ack": measure_clicks,
    "sustained": measure_sustained,
    "hostile": measure_hostile,
    "threads": measure_threads,
    "pending": measure_pending,
}
"""The phases in the order a run takes them (``--only`` picks some; a figure of a phase not run
reads n/a)."""


async def run(
    sizes: Sizes, database_url: str | None, only: tuple[str, ...] = tuple(PHASES)
) -> Results:
    results = Results(sizes)
    async with environment(database_url) as env:
        log(f"bot pid {env.bot_pid} at {env.bot_url}; Slack stand-in at {env.stub.api_url}")
        load_before = os.getloadavg()[0]
        for name, phase in PHASES.items():
            if name in only:
                await phase(env, sizes, results)
        results.notes.append(f"Slack stand-in served {env.stub.calls:,} Web API calls")
        results.notes.append(
            f"1-minute load average {load_before:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end (the benchmark itself adds about 2)"
        )
    return results
