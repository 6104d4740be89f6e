"""Socket Mode: Slack's WebSocket transport for apps that hold an app-level token.

`apps.connections.open`, called with the app token (`xapp-...`), hands out a one-time
`ws://.../sandbox/socket?ticket=...` URL. The app connects, gets `hello`, and while at least
one socket is connected every event and interaction goes over a socket instead of a signed
HTTP request (a connected socket wins). Each envelope waits for the app's ack
`{"envelope_id", "payload"?}`; the ack's payload stands in for the HTTP response body (e.g.
`response_action: errors` for a view submission). No ack within `ack_timeout` counts as a
failed attempt, and events are retried as over HTTP, with `retry_attempt`/`retry_reason`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sandbox.config import SandboxConfig
from sandbox.delivery import BotResponse
from sandbox.workspace import DeliveryRecord, Json

log = logging.getLogger("sandbox.socket_mode")

SOCKET_PATH = "/sandbox/socket"
# Interactive payloads whose ack body Slack reads (the others are acked and that's all).
ACCEPTS_RESPONSE_PAYLOAD = frozenset({"view_submission", "block_suggestion"})


class SocketConnection:
    """One connected client; sends are serialised so frames never interleave."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.id = "s_" + secrets.token_hex(6)
        self._lock = asyncio.Lock()

    async def send(self, message: Json) -> None:
        async with self._lock:
            await self.websocket.send_text(json.dumps(message))


class SocketMode:
    """Tickets, live connections, and envelope delivery with acks."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.connections: list[SocketConnection] = []
        self.deliveries: list[DeliveryRecord] = []
        """Every envelope sent (HTTP deliveries are in `workspace.deliveries`)."""
        self._tickets: set[str] = set()
        self._acks: dict[str, asyncio.Future[Json]] = {}
        self._turn = 0

    @property
    def connected(self) -> bool:
        return bool(self.connections)

    def routes(self) -> list[BaseRoute]:
        return [WebSocketRoute(SOCKET_PATH, self.endpoint)]

    # ----- apps.connections.open ------------------------------------------

    def connections_open(self, args: Json) -> Json:
        """The Web API method (authenticated with the app token by `WebApi`)."""
        ticket = secrets.token_urlsafe(16)
        self._tickets.add(ticket)
        base = self.config.public_url or f"http://{self.config.host}:{self.config.port}"
        ws_base = "ws" + base.removeprefix("http")  # http -> ws, https -> wss
        app_id = self.config.api_app_id
        return {"url": f"{ws_base}{SOCKET_PATH}?ticket={ticket}&app_id={app_id}"}

    # ----- the WebSocket endpoint ---------------------------------------

    async def endpoint(self, websocket: WebSocket) -> None:
        """Accept a ticket once, say hello, then read acks until the client goes."""
        ticket = websocket.query_params.get("ticket", "")
        if ticket not in self._tickets:
            await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        self._tickets.discard(ticket)
        await websocket.accept()
        conn = SocketConnection(websocket)
        self.connections.append(conn)
        try:
            await conn.send(self._hello())
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    text = message["bytes"].decode(errors="replace")
                self._ack(conn, text or "")
        except WebSocketDisconnect:
            pass
        finally:
            self.connections.remove(conn)
            log.info("socket %s closed", conn.id)

    def _hello(self) -> Json:
        return {
            "type": "hello",
            "num_connections": len(self.connections),
            "debug_info": {
                "host": "sandbox-socket",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.config.api_app_id},
        }

    def _ack(self, conn: SocketConnection, text: str) -> None:
        try:
            ack = json.loads(text)
        except ValueError:
            log.warning("socket %s sent something that is not JSON: %r", conn.id, text[:200])
            return
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        waiter = self._acks.get(str(envelope_id))
        if waiter is None:
            log.warning("socket %s acked unknown or late envelope %r", conn.id, envelope_id)
        elif not waiter.done():
            waiter.set_result(ack)

    # ----- delivering -----------------------------------------------------

    def _pick(self) -> SocketConnection | None:
        """Round-robin over the open connections, as Slack spreads envelopes."""
        if not self.connections:
            return None
        self._turn = (self._turn + 1) % len(self.connections)
        return self.connections[self._turn]

    async def deliver(
        self,
        kind: str,
        payload: Json,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> BotResponse:
        """Send one envelope (`events_api` or `interactive`) and wait for its ack.

        The answer looks like an HTTP one: 200 with the ack's payload as the body, or
        status None with `error` "timeout" (no ack in time) / "connection_failed".
        """
        envelope_id = str(uuid.uuid4())
        envelope: Json = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "slash_commands"
            or (kind == "interactive" and payload.get("type") in ACCEPTS_RESPONSE_PAYLOAD),
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        started = time.monotonic()
        resp = await self._send_and_wait(envelope)
        resp.duration = time.monotonic() - started
        self._record(kind, payload, retry_attempt or 0, resp)
        return resp

    async def _send_and_wait(self, envelope: Json) -> BotResponse:
        conn = self._pick()
        if conn is None:
            return BotResponse(None, error="connection_failed")
        envelope_id = envelope["envelope_id"]
        waiter: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = waiter
        try:
            await conn.send(envelope)
            ack = await asyncio.wait_for(waiter, self.config.ack_timeout)
        except TimeoutError:
            return BotResponse(None, error="timeout")
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            log.info("socket %s failed while sending: %s", conn.id, exc)
            return BotResponse(None, error="connection_failed")
        finally:
            self._acks.pop(envelope_id, None)
        body = ack.get("payload")
        text = json.dumps(body) if body else ""
        return BotResponse(200, text, {"content-type": "application/json"})

    def _record(self, kind: str, payload: Json, attempt: int, resp: BotResponse) -> None:
        if kind == "events_api":
            label, ident = "event", str(payload.get("event_id", ""))
        elif kind == "slash_commands":
            label, ident = "command", str(payload.get("command", ""))
        else:
            label, ident = str(payload.get("type")), str(payload.get("trigger_id", ""))
        if not resp.ok:
            log.warning("bot did not ack %s %s over the socket: %s", label, ident, resp.error)
        self.deliveries.append(
            DeliveryRecord(
                label, ident, attempt, resp.status, resp.error, resp.duration, time.time(), payload
            )
        )

    async def close(self) -> None:
        """Close every socket and fail waiting envelopes (sandbox shutdown)."""
        for waiter in self._acks.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("sandbox shutting down"))
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.websocket.close(code=1001)
