"""Sending events and interactions to the bot as signed HTTP requests.

This is the half of Slack that calls the app: Events API envelopes (with
Slack's retry policy) and interactivity payloads (form field `payload`). Every
attempt is logged in the workspace so tests and the page can see what the bot
answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from sandbox.config import SandboxConfig
from sandbox.signing import signed_headers
from sandbox.workspace import BOT_USER_ID, TEAM_ID, DeliveryRecord, Json, Workspace

if TYPE_CHECKING:
    from sandbox.socket_mode import SocketMode

log = logging.getLogger("sandbox.delivery")


@dataclass
class BotResponse:
    """What the bot answered; `status` is None when it did not answer in time."""

    status: int | None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        """The parsed body, or None when it is empty or not JSON (an empty ack)."""
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None


class Delivery:
    """Signs and posts requests to the bot; owns the HTTP session and retry tasks."""

    def __init__(self, config: SandboxConfig, workspace: Workspace) -> None:
        self.config = config
        self.workspace = workspace
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.socket: SocketMode | None = None  # while a socket is connected, it wins over HTTP

    async def _client(self) -> aiohttp.ClientSession:
        """Created lazily inside the running loop: no I/O at construction."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Cancel pending retries and close the session."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def settle(self, within: float = 10.0) -> None:
        """Wait until every background delivery (and its retries) has finished."""
        deadline = time.monotonic() + within
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())

    # ----- raw requests -------------------------------------------------

    async def send_raw(
        self,
        body: bytes,
        content_type: str = "application/json",
        *,
        url: str | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
        within: float | None = None,
    ) -> BotResponse:
        """POST `body` to the bot, signed (or deliberately mis-signed) as asked.

        Tests use the keyword overrides to send wrong secrets, stale timestamps
        or garbage signatures and check that the bot answers 401.
        """
        stamp = int(time.time()) if timestamp is None else timestamp
        sent = signed_headers(secret or self.config.signing_secret, stamp, body)
        if signature is not None:
            sent["X-Slack-Signature"] = signature
        sent["Content-Type"] = content_type
        sent.update(headers or {})
        return await self._post(url or self.config.bot_url, body, sent, within)

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], within: float | None
    ) -> BotResponse:
        session = await self._client()
        started = time.monotonic()
        limit = aiohttp.ClientTimeout(total=within or self.config.ack_timeout)
        try:
            async with session.post(url, data=body, headers=headers, timeout=limit) as resp:
                text = await resp.text()
                hdrs = {k: v for k, v in resp.headers.items()}
                return BotResponse(resp.status, text, hdrs, None, time.monotonic() - started)
        except TimeoutError:
            return BotResponse(None, error="http_timeout", duration=time.monotonic() - started)
        except aiohttp.ClientError as exc:
            log.info("bot unreachable at %s: %s", url, exc)
            return BotResponse(None, error="connection_failed", duration=time.monotonic() - started)

    # ----- events -------------------------------------------------------

    def envelope(self, event: Json) -> Json:
        """Wrap an event exactly like Slack's Events API `event_callback`."""
        now = int(self.config.clock())
        return {
            "token": self.config.verification_token,
            "team_id": TEAM_ID,
            "context_team_id": TEAM_ID,
            "context_enterprise_id": None,
            "api_app_id": self.config.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": "Ev" + self.workspace.new_id("0"),
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + self.workspace.new_id("ctx"),
        }

    def emit_event(self, event: Json) -> asyncio.Task[list[BotResponse]]:
        """Deliver an event in the background (Slack never blocks the sender)."""
        task = asyncio.get_running_loop().create_task(self.deliver_event(self.envelope(event)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def deliver_event(self, envelope: Json) -> list[BotResponse]:
        """Send once, then retry like Slack while the bot fails to ack within 3 s."""
        body = json.dumps(envelope).encode()
        responses: list[BotResponse] = []
        delays = (0.0, *self.config.retry_delays[:3])
        for attempt, delay in enumerate(delays):
            if delay:
                await asyncio.sleep(delay)
            reason = (responses[-1].error or "http_error") if attempt else ""
            if self.socket is not None and self.socket.connected:
                resp = await self.socket.deliver("events_api", envelope, attempt, reason)
            else:
                extra = {}
                if attempt:
                    extra = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": reason}
                resp = await self.send_raw(body, headers=extra)
                self._record("event", envelope["event_id"], attempt, resp, envelope)
            responses.append(resp)
            if resp.ok:
                break
        return responses

    # ----- interactivity -----------------------------------------------

    async def deliver_interaction(self, payload: Json) -> BotResponse:
        """POST `payload=<json>` form-encoded, as Slack sends interactions (no retries)."""
        if self.socket is not None and self.socket.connected:
            return await self.socket.deliver("interactive", payload)
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        resp = await self.send_raw(
            body, "application/x-www-form-urlencoded", url=self.config.interaction_url
        )
        self._record(str(payload.get("type")), str(payload.get("trigger_id", "")), 0, resp, payload)
        return resp

    async def deliver_command(self, payload: dict[str, str]) -> BotResponse:
        """POST a slash command as Slack does: plain form fields (no `payload` wrapper), to
        the command's Request URL, signed, no retries; over the socket when one is connected."""
        if self.socket is not None and self.socket.connected:
            return await self.socket.deliver("slash_commands", dict(payload))
        body = urllib.parse.urlencode(payload).encode()
        resp = await self.send_raw(
            body, "application/x-www-form-urlencoded", url=self.config.command_url
        )
        self._record("command", payload["command"], 0, resp, dict(payload))
        return resp

    def _record(self, kind: str, ident: str, attempt: int, resp: BotResponse, body: Json) -> None:
        if not resp.ok:
            log.warning("bot answered %s %s with %s %s", kind, ident, resp.status, resp.error)
        record = DeliveryRecord(
            kind, ident, attempt, resp.status, resp.error, resp.duration, time.time(), body
        )
        self.workspace.record_delivery(record)
