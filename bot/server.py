"""Run the bot: the agent service, the Bolt app, and its transport (HTTP or Socket Mode).

Shutdown is graceful because a replica is stopped on every deploy: Bolt acknowledges a click at
once and applies the decision in a background task, so a process that simply exited would drop
decisions people already saw acknowledged. On SIGTERM the server stops taking requests, waits
(bounded) for the work those requests started, and only then closes the database pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import hashlib
import hmac
import logging
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import uvicorn
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncBoltRequest
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.internals import parse_body
from slack_sdk.socket_mode.request import SocketModeRequest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.app import build_app, slack_client
from bot.config import BotSettings
from bot.flow import ReviewFlow
from bot.limits import TurnLimiter
from bot.logs import set_context
from bot.permissions import Approvers
from bot.schema import SCHEMA
from bot.store import BotStore
from bot.sweeper import run_sweeper
from bot.threads import SlackThread
from graph import AgentService, open_agent
from graph.model import ChatModel
from graph.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 25.0  # under the 30 s most orchestrators wait before SIGKILL


# -- work started by Slack requests ---------------------------------------------------------------

_REQUEST_WORK: contextvars.ContextVar[InflightWork | None] = contextvars.ContextVar(
    "request_work", default=None
)


class InflightWork:
    """The asyncio tasks started while handling Slack requests, so shutdown can wait for them.

    Bolt runs each listener in a task it creates after ``ack()`` and never joins. Rather than
    wrapping each listener, a request is handled inside :meth:`request_scope`, and a task factory
    adopts every task created in that scope (the scope is a context variable, which new tasks
    inherit, so tasks those tasks start are adopted too). New listeners need no extra care.
    """

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False

    @contextmanager
    def request_scope(self) -> Iterator[None]:
        token = _REQUEST_WORK.set(self)
        try:
            yield
        finally:
            _REQUEST_WORK.reset(token)

    def adopt(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` s for adopted tasks; cancel the rest; return how many were."""
        self.draining = True
        current = asyncio.current_task()
        waiting = {task for task in self.tasks if task is not current and not task.done()}
        if waiting:
            log.info("waiting for %d in-flight request task(s) to finish", len(waiting))
            _, late = await asyncio.wait(waiting, timeout=grace)
            # A task can start another while finishing; those are part of the same work.
            while not late and (more := {t for t in self.tasks if t is not current} - waiting):
                waiting |= more
                _, late = await asyncio.wait(more, timeout=grace)
            if late:
                log.warning("cancelling %d task(s) still running after %.0f s", len(late), grace)
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=5)
                return len(late)
        return 0


TaskFactory = Callable[..., "asyncio.Future[Any]"]


def install_task_tracking(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` hand tasks created in a request scope to that scope's :class:`InflightWork`.

    Idempotent; an existing task factory (e.g. eager tasks) is kept and wrapped.
    """
    previous = cast(TaskFactory | None, loop.get_task_factory())
    if getattr(previous, "_adopts_request_work", False):
        return

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        context: contextvars.Context | None = kwargs.get("context")
        owner = context.get(_REQUEST_WORK) if context is not None else _REQUEST_WORK.get()
        if owner is not None and isinstance(task, asyncio.Task):
            owner.adopt(task)
        return task

    factory._adopts_request_work = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)  # type: ignore[arg-type]


# -- the bot ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bot:
    settings: BotSettings
    service: AgentService
    app: AsyncApp
    flow: ReviewFlow
    work: InflightWork = field(default_factory=InflightWork)


def _obj(value: Any) -> dict[str, Any]:
    """A payload part that should be an object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def request_context(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The conversation (thread id) and review (ref) a Slack payload is about, when it says."""
    team = body.get("team_id") or _obj(body.get("team")).get("id")
    event = body.get("event")
    if isinstance(event, dict) and event.get("channel"):
        thread_ts = event.get("thread_ts") or event.get("ts")
        if not thread_ts:
            return None, None
        return SlackThread(team, event["channel"], thread_ts).thread_id, None
    ref: str | None = None
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        ref = actions[0].get("value") if isinstance(actions[0].get("value"), str) else None
    view = body.get("view")
    if ref is None and isinstance(view, dict) and isinstance(view.get("private_metadata"), str):
        ref = view["private_metadata"] or None
    container = _obj(body.get("container"))
    message = _obj(body.get("message"))
    channel = container.get("channel_id") or _obj(body.get("channel")).get("id")
    thread_ts = message.get("thread_ts") or container.get("thread_ts")
    thread_id = SlackThread(team, channel, thread_ts).thread_id if channel and thread_ts else None
    return thread_id, ref[:100] if ref else None


_OBJECT_PARTS = ("event", "team", "user", "channel", "container", "message", "view", "enterprise")


MAX_NESTING = 64
"""Deepest nesting of objects and lists accepted in a payload. Slack's deepest (rich text in a
message in a click) are around 15; a body nested hundreds deep makes any recursive code
downstream (encoders, copies) raise instead of answering."""


def nesting_within(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests objects and lists at most ``limit`` deep (iteratively)."""
    if not isinstance(value, dict | list):
        return True
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def well_formed(raw: bytes, content_type: str | None) -> dict[str, Any] | None:
    """The parsed body if it has the shape Bolt can read (see :func:`http_app`), else None."""
    try:
        body: Any = parse_body(raw.decode("utf-8"), content_type)  # json.loads: any value
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError; deep nesting
        return None
    if not isinstance(body, dict) or not nesting_within(body):
        return None
    # Bolt reads ids from the body and from the event, message and previous message in it.
    nested = [body.get(k) for k in ("event", "message", "previous_message")]
    parts = [body, *(part for part in nested if isinstance(part, dict))]
    if any(not isinstance(part.get(k), dict | str | None) for part in parts for k in _OBJECT_PARTS):
        return None
    if "event" in body and not isinstance(body["event"], dict):
        return None
    authorizations = body.get("authorizations")
    if authorizations is None or (
        isinstance(authorizations, list) and all(isinstance(a, dict) for a in authorizations)
    ):
        return body
    return None


class ParsedRequest(AsyncBoltRequest):
    """A Bolt request made from a body :func:`well_formed` has parsed already.

    A click's payload carries the whole message, URL-encoded; parsing it a second time (as
    ``AsyncSlackRequestHandler`` does) was about a quarter of a click's handling before the
    listener ran. Bolt still verifies the signature over the raw body, as for any request
    (a second check after :func:`signed_by_slack`: defence in depth, and the only check for
    an app served some other way).
    """

    def __init__(self, raw: str, body: dict[str, Any], request: Request) -> None:
        super().__init__(body="", query=request.url.query, headers=dict(request.headers))
        self.raw_body = raw
        self.body = body
        self.context = build_async_context(AsyncBoltContext(), body)


async def log_context_middleware(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
    """Name the conversation and review in every log line the request's listener writes.

    Runs after signature verification, so forged requests never reach the log this way.
    """
    thread_id, ref = request_context(body)
    set_context(thread_id=thread_id, review_ref=ref)
    kind = body.get("type") or "request"
    actions = body.get("actions")
    detail = _obj(body.get("event")).get("type") or ",".join(
        str(a.get("action_id"))
        for a in (actions if isinstance(actions, list) else [])
        if isinstance(a, dict)
    )
    log.info("slack %s %s", kind, detail or _obj(body.get("view")).get("callback_id") or "")
    await next()


# -- what /slack/events lets in -------------------------------------------------------------------

MAX_BODY_BYTES = 1 << 20
"""Largest request body read (1 MiB). Slack's own payloads are far smaller: a click carries the
message clicked (at most 50 blocks), a modal submission the modal. A longer body is refused
with 413 as soon as its ``Content-Length`` (or the bytes read so far) says so, and its
connection closed, so it is never read whole."""

_DIGITS = re.compile(r"[0-9]{1,15}")  # ASCII digits only: int() also takes " 1_0", "١"


def too_large() -> Response:
    """413, closing the connection: the rest of the body is not read, even to discard it."""
    return JSONResponse(
        {"error": "request body too large"}, status_code=413, headers={"connection": "close"}
    )


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | Response:
    """The body, read as it arrives; a refusal (400, 413) once it cannot be a Slack request."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _DIGITS.fullmatch(declared):
            return JSONResponse({"error": "bad content-length"}, status_code=400)
        if int(declared) > limit:
            return too_large()
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return too_large()
        parts.append(chunk)
    return b"".join(parts)


SIGNATURE_MAX_AGE_SECONDS = 300  # Slack's own advice: refuse replays over five minutes old


def signed_by_slack(secret: bytes, raw: bytes, headers: Headers) -> bool:
    """Slack's ``v0`` signature over the raw bytes, with a timestamp under five minutes old.

    Computed here rather than with ``slack_sdk``'s ``SignatureVerifier`` (which Bolt still
    runs afterwards), because it raises instead of answering False on input Slack never
    sends: a timestamp that is not an integer (``int()``), a body that is not UTF-8 (it
    decodes the body first), a signature that is not ASCII (``compare_digest`` on str).
    """
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not _DIGITS.fullmatch(timestamp) or not signature.isascii():
        return False
    if abs(time.time() - int(timestamp)) > SIGNATURE_MAX_AGE_SECONDS:
        return False
    expected = hmac.new(secret, b"v0:%s:%s" % (timestamp.encode(), raw), hashlib.sha256)
    return hmac.compare_digest(b"v0=" + expected.hexdigest().encode(), signature.encode())


def is_ssl_check(raw: bytes) -> bool:
    """Slack's certificate check of a slash command URL (``ssl_check=1&token=...``): Bolt
    answers it 200 with nothing in it, signed or not; so do we, without parsing more."""
    return len(raw) <= 512 and b"ssl_check=1" in raw.split(b"&")


@asynccontextmanager
async def running_bot(
    settings: BotSettings, *, model: ChatModel | None = None, registry: ToolRegistry | None = None
) -> AsyncIterator[Bot]:
    """Open the database (embedded unless DATABASE_URL), migrate, and wire the app.

    ``model`` and ``registry`` replace the configured ones (tests and benchmarks). On exit,
    work started by Slack requests is given :data:`SHUTDOWN_GRACE_SECONDS` to finish before the
    database pool closes under it.
    """
    metrics.count_errors()
    install_task_tracking(asyncio.get_running_loop())
    policy = settings.load_policy()
    async with open_agent(
        settings.agent_with(policy), extra_schema=SCHEMA, model=model, registry=registry
    ) as service:
        policy.check_tools(service.tool_names, str(settings.policy_file or "APPROVERS"))
        session = aiohttp.ClientSession()  # one connection pool for every Web API call
        client = slack_client(settings, session)
        store = BotStore(service.pool, recover_after_seconds=settings.recover_after_seconds)
        flow = ReviewFlow(service, store, client, Approvers(policy, client))
        app = build_app(settings, client, flow, TurnLimiter(store.pool, settings.turn_limits))
        app.use(log_context_middleware)
        bot = Bot(settings, service, app, flow)
        sweeper = (
            asyncio.create_task(
                run_sweeper(flow, settings.sweep_seconds, settings.recover_after_seconds)
            )
            if settings.sweep_seconds > 0
            else None
        )
        try:
            yield bot
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await bot.work.drain(SHUTDOWN_GRACE_SECONDS)
            await session.close()


CONCURRENT_CLICKS = 16


def http_app(bot: Bot, *, slack_events: bool = True) -> Starlette:
    """``POST /slack/events`` for Slack; ``/healthz`` (alive), ``/readyz`` (database, and not
    shutting down) and ``/metrics`` (Prometheus).

    Socket Mode serves the last three only (``slack_events=False``): its requests are not
    signed, so an HTTP route into the same app would accept forged ones.
    """
    secret = bot.settings.signing_secret.encode()
    # Clicks are acknowledged at once and then queue here for Bolt's dispatch (its middleware
    # and the listener up to its ack; the decision then goes on in Bolt's background task, with
    # the database pool as its limit): a burst of clicks enters Bolt a few at a time, so the
    # acknowledgements of later clicks are not held up behind hundreds of dispatches.
    deciding = asyncio.Semaphore(CONCURRENT_CLICKS)

    async def handle_click(raw: bytes, body: dict[str, Any], request: Request) -> None:
        async with deciding:
            try:  # Slack has its answer already: Bolt's response goes nowhere
                await bot.app.async_dispatch(ParsedRequest(raw.decode("utf-8"), body, request))
            except Exception:
                log.warning("refused a request Bolt could not read", exc_info=True)

    async def dispatch(raw: bytes, body: dict[str, Any], request: Request) -> Response:
        """Hand a request to Bolt; one it cannot even read (a shape Slack never sends) is
        refused with 400 rather than a crash."""
        try:
            parsed = ParsedRequest(raw.decode("utf-8"), body, request)
            return to_starlette_response(await bot.app.async_dispatch(parsed))
        except Exception:
            log.warning("refused a request Bolt could not read", exc_info=True)
            return JSONResponse({"error": "malformed request"}, status_code=400)

    async def events(request: Request) -> Response:
        """Cheapest refusals first, so unsigned traffic cannot slow Slack's: the body is
        capped while it is read (413), the signature checked over the raw bytes (401), and
        only a signed body is parsed (400 for shapes Slack never sends, on which Bolt would
        raise and answer 500)."""
        raw = await read_capped(request)
        if isinstance(raw, Response):
            return raw
        if not signed_by_slack(secret, raw, request.headers):
            if is_ssl_check(raw):
                return Response(status_code=200)
            return JSONResponse({"error": "invalid request signature"}, status_code=401)
        body = well_formed(raw, request.headers.get("content-type"))
        if body is None:
            return JSONResponse({"error": "malformed request"}, status_code=400)
        with bot.work.request_scope():
            if body.get("type") == "block_actions":
                # A button's acknowledgement carries nothing, so Slack is answered now instead
                # of after Bolt's dispatch, which polls for ack() every 10 ms on a loop shared
                # with running decisions. Bolt verifies the request again as it handles it.
                bot.work.adopt(asyncio.create_task(handle_click(raw, body, request)))
                return Response(status_code=200)
            return await dispatch(raw, body, request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if bot.work.draining:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        try:
            async with bot.service.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as error:
            return JSONResponse(
                {"status": "unavailable", "database": str(type(error).__name__)}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(_: Request) -> Response:
        await metrics.refresh_pending(bot.service.pool)
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if slack_events:
        routes.append(Route("/slack/events", events, methods=["POST"]))
    return Starlette(routes=routes)


class _QuietSignalsServer(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM once it has stopped, which would kill the process
    before in-flight work is drained; here the caller owns the signals instead."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def http_server(
    bot: Bot, *, slack_events: bool = True, sock: socket.socket | None = None
) -> AsyncIterator[None]:
    """Serve :func:`http_app` while the block runs; on leaving, close the listening socket and
    let open requests finish (not the work they started: see :meth:`InflightWork.drain`).

    ``sock`` (bound and listening) replaces ``settings.host``/``port`` (tests).
    """
    config = uvicorn.Config(
        http_app(bot, slack_events=slack_events),
        host=bot.settings.host,
        port=bot.settings.port,
        log_config=None,  # our handler formats uvicorn's records too (JSON stays JSON)
        log_level="info",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = _QuietSignalsServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock] if sock else None))
    while not server.started:
        if task.done():
            task.result()  # failed to start (e.g. the port is taken): raise that
            raise RuntimeError("the HTTP server stopped during start-up")
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        bot.work.draining = True  # /readyz answers 503 from here on
        server.should_exit = True
        await task
        log.info("stopped accepting requests")


async def serve_http(bot: Bot, stop: asyncio.Event, sock: socket.socket | None = None) -> None:
    """Serve Slack's requests until ``stop`` is set, then stop accepting and drain."""
    async with http_server(bot, sock=sock):
        await stop.wait()
    await bot.work.drain(SHUTDOWN_GRACE_SECONDS)


class _TrackedSocketModeHandler(AsyncSocketModeHandler):
    """Socket Mode requests get the same request scope as HTTP ones."""

    work: InflightWork

    async def handle(self, client: Any, req: SocketModeRequest) -> None:
        with self.work.request_scope():
            await super().handle(client, req)


async def serve_socket_mode(bot: Bot, stop: asyncio.Event) -> None:
    """Take Slack's requests over the WebSocket; health and metrics still answer on $PORT."""
    assert bot.settings.app_token is not None
    handler = _TrackedSocketModeHandler(bot.app, bot.settings.app_token)
    handler.work = bot.work
    async with http_server(bot, slack_events=False):
        log.info("connecting to Slack in Socket Mode")
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await stop.wait()
        bot.work.draining = True
        await handler.disconnect_async()  # type: ignore[no-untyped-call]
        log.info("disconnected from Slack")
        await bot.work.drain(SHUTDOWN_GRACE_SECONDS)
        await handler.close_async()  # type: ignore[no-untyped-call]


@contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM (orchestrators) and SIGINT (Ctrl-C) both mean: finish up and exit."""
    loop = asyncio.get_running_loop()

    def request_stop(name: str) -> None:
        if not stop.is_set():
            log.info("%s received: shutting down gracefully", name)
        stop.set()

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, request_stop, sig.name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve(settings: BotSettings) -> None:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with running_bot(settings) as bot:
            if settings.socket_mode:
                await serve_socket_mode(bot, stop)
            else:
                log.info("listening on http://%s:%s/slack/events", settings.host, settings.port)
                await serve_http(bot, stop)
    log.info("shut down cleanly")


GC_YOUNG_THRESHOLD = 10_000
"""Allocations (net) between collections of the youngest generation; Python's default is 700."""


def tune_gc() -> None:
    """Collect less often, and never re-examine what start-up created.

    A decision allocates thousands of short-lived containers (LangGraph's step machinery,
    messages, rows), almost all freed by reference counting; with Python's defaults the cyclic
    collector still ran a few hundred times per thousand approvals, and every full collection
    walked the ~150,000 objects of the loaded libraries: about 7 % of the CPU of an approval.
    Freezing moves the start-up objects out of the collector's sight (they live as long as the
    process); garbage cycles are still collected, just in larger batches.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def run_fast(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed: the event loop is this service's hot path (every
    click is parsed, verified and acknowledged on it). For a process that runs the bot and
    nothing else: the garbage collector is tuned for it first (:func:`tune_gc`)."""
    tune_gc()
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # e.g. Windows; the standard loop works, only slower
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def run(settings: BotSettings) -> None:
    run_fast(serve(settings))
