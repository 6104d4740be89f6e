"""The HTTP transport: ``POST /slack/events`` with its cheap refusals first (body cap, then the
signature over the raw bytes, then the shape), clicks acknowledged before Bolt's dispatch, and
``/healthz``, ``/readyz`` and ``/metrics``; served by uvicorn with signals left to the caller."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import uvicorn
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.bolt_request import ParsedRequest
from bot.inflight import SHUTDOWN_GRACE_SECONDS
from bot.payloads import well_formed
from bot.transport.ack_process import (
    acknowledging,
    listening_socket,
    private_socket_path,
    remove_private_socket,
    unix_listening_socket,
)
from bot.transport.ackfirst import count_requests, gate
from bot.transport.checks import (
    DIGITS,
    MAX_BODY_BYTES,
    is_click,
    is_ssl_check,
    signature_matches,
)
from bot.transport.linger import LingeringHttpToolsProtocol
from graph.remote import RemoteAgent
from graph.tools.mcp import McpStatus

if TYPE_CHECKING:
    from bot.startup import Bot

log = logging.getLogger(__name__)


def too_large() -> Response:
    """413, closing the connection: the rest of the body is not read by the app (the server
    discards a bounded amount of it while closing: :mod:`bot.transport.linger`)."""
    return JSONResponse(
        {"error": "request body too large"}, status_code=413, headers={"connection": "close"}
    )


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | Response:
    """The body, read as it arrives; a refusal (400, 413) once it cannot be a Slack request."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not DIGITS.fullmatch(declared):
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


def signed_by_slack(secret: bytes, raw: bytes, headers: Headers) -> bool:
    """Slack's ``v0`` signature over the raw bytes, with a timestamp under five minutes old
    (:func:`bot.transport.checks.signature_matches`)."""
    return signature_matches(
        secret,
        raw,
        headers.get("x-slack-request-timestamp") or "",
        headers.get("x-slack-signature") or "",
    )


CONCURRENT_CLICKS = 16


def mcp_section(servers: Sequence[McpStatus]) -> dict[str, Any]:
    """``/readyz``'s word on MCP servers: each one's tools or why it has none. One optional
    server down does not make the bot unready (its other tools and reviews work): the status
    stays 200 and this section names it."""
    if not servers:
        return {}
    return {
        "mcp": {
            status.server: {"status": "ok", "tools": len(status.tools)}
            if status.available
            else {"status": "unavailable", "error": status.error}
            for status in servers
        }
    }


def http_app(bot: Bot, *, slack_events: bool = True) -> Starlette:
    """``POST /slack/events`` for Slack; ``/healthz`` (alive), ``/readyz`` (database, the agent
    server with ``AGENT_URL``, and not shutting down) and ``/metrics`` (Prometheus).

    Socket Mode serves the last three only (``slack_events=False``): its requests are not
    signed, so an HTTP route into the same app would accept forged ones.
    """
    secret = bot.settings.signing_secret.encode()
    # Clicks are acknowledged at once and then queue here for Bolt's dispatch (its middleware
    # and the listener up to its ack; the decision then goes on in Bolt's background task, with
    # the database pool as its limit): a burst of clicks enters Bolt a few at a time, so the
    # acknowledgements of later clicks are not held up behind hundreds of dispatches. And a
    # decision enters only once no request is waiting for its answer (``gate``): acks first.
    deciding = asyncio.Semaphore(CONCURRENT_CLICKS)

    async def handle_click(
        raw: bytes, request: Request, body: dict[str, Any] | None = None
    ) -> None:
        """Decide an acknowledged click (its body parsed here unless it was already), once no
        request is waiting for its answer."""
        await gate().quiet()
        async with deciding:
            await gate().quiet()  # a burst may have arrived while this one waited its turn
            if body is None:
                body = well_formed(raw, request.headers.get("content-type"))
            if body is None or body.get("type") != "block_actions":
                log.warning("dropped a signed click Bolt could not read (acknowledged already)")
                return
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
        content_type = request.headers.get("content-type")
        if is_click(raw, content_type):
            # A button's acknowledgement carries nothing, so Slack is answered now, before the
            # body is even parsed (most of a click's handling here), instead of after Bolt's
            # dispatch. Bolt verifies the request again as it handles it.
            with bot.work.request_scope():  # adopted: shutdown waits for it
                bot.work.adopt(asyncio.create_task(handle_click(raw, request)))
            return Response(status_code=200)
        body = well_formed(raw, content_type)
        if body is None:
            return JSONResponse({"error": "malformed request"}, status_code=400)
        with bot.work.request_scope():
            if body.get("type") == "block_actions":  # a click spelled another way
                bot.work.adopt(asyncio.create_task(handle_click(raw, request, body)))
                return Response(status_code=200)
            return await dispatch(raw, body, request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if bot.work.draining:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        try:
            async with bot.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as error:
            return JSONResponse(
                {"status": "unavailable", "database": str(type(error).__name__)}, status_code=503
            )
        if isinstance(bot.service, RemoteAgent) and (down := await bot.service.reachable()):
            return JSONResponse({"status": "unavailable", "agent_server": down}, status_code=503)
        return JSONResponse({"status": "ready", **mcp_section(bot.service.tool_servers)})

    async def metrics_endpoint(_: Request) -> Response:
        await metrics.refresh_pending(bot.pool)
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if slack_events:
        routes.append(Route("/slack/events", events, methods=["POST"]))
    return Starlette(routes=routes, middleware=[Middleware(count_requests)])


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

    With ``ACK_PROCESS`` (``settings.ack_process``) Slack's requests reach an acknowledging
    process in front (:mod:`bot.transport.acker`), which answers clicks at once and forwards
    everything to this app on a private Unix socket. ``sock`` (bound and listening) replaces
    ``settings.host``/``port`` (tests).
    """
    if slack_events and bot.settings.ack_process:
        async with _behind_acknowledger(bot, sock):
            yield
        return
    config = _uvicorn_config(bot, slack_events, host=bot.settings.host, port=bot.settings.port)
    async with _uvicorn(bot, config, [sock] if sock else None):
        yield


UPSTREAM_KEEP_ALIVE_SECONDS = 24 * 3600
"""How long the bot keeps an idle connection from the acknowledger open: as long as it likes
(the acknowledger keeps one open for clicks, and a click written on a connection the server is
closing would be lost after its acknowledgement)."""


@asynccontextmanager
async def _behind_acknowledger(bot: Bot, sock: socket.socket | None) -> AsyncIterator[None]:
    listening = sock or await listening_socket(bot.settings.host, bot.settings.port)
    path = private_socket_path()
    unix = unix_listening_socket(path)
    config = _uvicorn_config(bot, True, timeout_keep_alive=UPSTREAM_KEEP_ALIVE_SECONDS)
    try:
        async with (
            _uvicorn(bot, config, [unix]),
            acknowledging(listening, path, bot.settings.signing_secret),
        ):
            yield
            bot.work.draining = True  # /readyz answers 503 while the acknowledger finishes
    finally:
        unix.close()
        remove_private_socket(path)
        if sock is None:
            listening.close()


def _uvicorn_config(bot: Bot, slack_events: bool, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        http_app(bot, slack_events=slack_events),
        log_config=None,  # our handler formats uvicorn's records too (JSON stays JSON)
        log_level="info",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        http=LingeringHttpToolsProtocol,
        **options,
    )


@asynccontextmanager
async def _uvicorn(
    bot: Bot, config: uvicorn.Config, sockets: list[socket.socket] | None
) -> AsyncIterator[None]:
    """uvicorn serving ``config`` (on ``sockets`` when given) while the block runs."""
    server = _QuietSignalsServer(config)
    task = asyncio.create_task(server.serve(sockets=sockets))
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
