"""Assembling the sandbox: the `Sandbox` object, the ASGI app, in-process serving.

Tests use `running_sandbox()` to get a real loopback server (a real port, real
HTTP) plus the in-process handle for driving and inspecting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from sandbox.actors import Actors, ModalResult
from sandbox.config import SandboxConfig
from sandbox.delivery import BotResponse, Delivery
from sandbox.socket_mode import SocketMode
from sandbox.ui import SHUTDOWN, UiApi
from sandbox.web_api import WebApi
from sandbox.workspace import CallRecord, Json, Workspace

T = TypeVar("T")


class Sandbox:
    """One Slack stand-in: state, Web API, delivery to the bot, simulated people."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.workspace = Workspace(self.config.clock, self.config.trigger_ttl)
        self.delivery = Delivery(self.config, self.workspace)
        self.web_api = WebApi(self.config, self.workspace, self.delivery)
        self.actors = Actors(self.config, self.workspace, self.delivery)
        self.socket = SocketMode(self.config)
        self.delivery.socket = self.socket
        self.web_api.methods["apps.connections.open"] = self.socket.connections_open

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        cfg = self.config
        return cfg.public_url or f"http://{cfg.host}:{cfg.port}"

    @property
    def api_url(self) -> str:
        """What the bot passes as `AsyncWebClient(base_url=...)`."""
        return self.url + "/api/"

    # ----- acting as people ---------------------------------------------

    async def post_message(
        self, user: str, channel: str, text: str, thread_ts: str | None = None
    ) -> str:
        """Post as `user` in a channel id, `#name` or the bot DM (channel=U0BOT). `text` is
        Slack's wire form (``&amp;``, ``<@U…>``); to type as a person does, `type_message`."""
        return await self.actors.post_message(user, channel, text, thread_ts)

    async def type_message(
        self, user: str, channel: str, typed: str, thread_ts: str | None = None
    ) -> str:
        """Type ``Tom & Jerry <3 @bob`` as `user`; the bot receives what Slack would send."""
        return await self.actors.type_message(user, channel, typed, thread_ts)

    async def click_button(
        self,
        user: str,
        channel: str,
        message_ts: str,
        action_id: str,
        block_id: str | None = None,
        value: str | None = None,
    ) -> BotResponse:
        return await self.actors.click_button(user, channel, message_ts, action_id, block_id, value)

    async def click_in_home(
        self, user: str, action_id: str, block_id: str | None = None, value: str | None = None
    ) -> BotResponse:
        """Click an element of `user`'s published Home view (e.g. a button's accessory)."""
        return await self.actors.click_in_home(user, action_id, block_id, value)

    async def submit_modal(self, user: str, values: dict[str, Any] | None = None) -> ModalResult:
        return await self.actors.submit_modal(user, values)

    async def close_modal(self, user: str) -> BotResponse | None:
        return await self.actors.close_modal(user)

    def open_dm(self, user: str) -> str:
        return self.actors.open_dm(user)

    def open_assistant_thread(self, user: str) -> str:
        """A new conversation in the app's assistant view; the thread's ts."""
        return self.actors.open_assistant_thread(user)

    async def open_home(self, user: str, tab: str = "home") -> None:
        """Open the bot's Home tab as `user` (`app_home_opened` goes out in the background)."""
        await self.actors.open_home(user, tab)

    async def run_command(
        self, user: str, channel: str, command: str, text: str = ""
    ) -> BotResponse:
        """Type a slash command in `channel` (id, `#name`, or the bot DM) as `user`."""
        return await self.actors.run_command(user, channel, command, text)

    # ----- reading state --------------------------------------------------

    def messages(self, channel: str) -> list[Json]:
        """Top-level messages of a channel, oldest first."""
        chan = self.workspace.channel(channel)
        return [m.to_dict() for m in reversed(self.workspace.history(chan.id))]

    def replies(self, channel: str, thread_ts: str) -> list[Json]:
        """Thread parent then replies, oldest first."""
        chan = self.workspace.channel(channel)
        return [m.to_dict() for m in self.workspace.thread(chan.id, thread_ts)]

    def ephemerals(self, user: str, channel: str | None = None) -> list[Json]:
        return [
            e.to_dict()
            for e in self.workspace.ephemerals
            if e.visible_to == user and (channel is None or e.channel == channel)
        ]

    def home(self, user: str) -> Json | None:
        """The Home view the bot last published for `user`, or None."""
        view = self.workspace.homes.get(user)
        return view.to_dict() if view else None

    def open_modal(self, user: str) -> Json | None:
        """The top modal for `user` (with `_errors`/`_banner`), or None."""
        return self.actors.open_modal(user)

    def calls_of(self, method: str) -> list[CallRecord]:
        return self.workspace.calls_of(method)

    def reset(self) -> None:
        self.workspace.reset()

    # ----- waiting -------------------------------------------------------

    async def wait_for(self, probe: Callable[[], T | None], within: float = 5.0) -> T:
        """Poll `probe` until it returns something truthy; TimeoutError otherwise."""
        deadline = time.monotonic() + within
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {within:.1f}s")
            await asyncio.sleep(0.02)

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[CallRecord], bool] | None = None,
        within: float = 5.0,
        after: int = 0,
    ) -> CallRecord:
        """The first recorded call of `method` (index >= `after`) matching `predicate`."""

        def probe() -> CallRecord | None:
            for call in self.workspace.calls[after:]:
                if call.method == method and (predicate is None or predicate(call)):
                    return call
            return None

        return await self.wait_for(probe, within)

    async def settle(self, within: float = 10.0) -> None:
        """Wait for background event deliveries (including retries) to finish."""
        await self.delivery.settle(within)

    async def send_raw(
        self, body: bytes, content_type: str = "application/json", **kw: Any
    ) -> BotResponse:
        """Send arbitrary (mis)signed bytes to the bot; see `Delivery.send_raw`."""
        return await self.delivery.send_raw(body, content_type, **kw)

    async def aclose(self) -> None:
        self.workspace.publish(SHUTDOWN)
        await self.socket.close()
        await self.delivery.close()


def create_app(config: SandboxConfig | None = None, sandbox: Sandbox | None = None) -> Starlette:
    """The ASGI app; `app.state.sandbox` is the `Sandbox` behind it."""
    sb = sandbox or Sandbox(config)
    ui = UiApi(sb.workspace, sb.actors, sb.delivery)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sb.aclose()

    routes = [*sb.web_api.routes(), *sb.socket.routes(), *ui.routes()]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sb
    return app


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def running_sandbox(config: SandboxConfig | None = None) -> AsyncIterator[Sandbox]:
    """Serve a sandbox with uvicorn on loopback inside the current event loop.

    With no config (or port 0) a free port is picked; `sandbox.url` is set
    before the server starts so response_urls and permalinks are right.
    """
    cfg = config or SandboxConfig(port=0)
    sock = _bind(cfg.host, cfg.port)
    port = sock.getsockname()[1]
    cfg = dataclasses.replace(cfg, port=port, public_url=f"http://{cfg.host}:{port}")
    sandbox = Sandbox(cfg)
    app = create_app(sandbox=sandbox)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield sandbox
    finally:
        sandbox.workspace.publish(SHUTDOWN)
        server.should_exit = True
        await task
        await sandbox.aclose()
        sock.close()
