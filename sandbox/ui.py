"""HTTP endpoints for the browser page and for tests: `/`, `/sandbox/api/*`, SSE.

The page is a thin client: it reads state and asks the sandbox to act as the
chosen person, through the same `Actors` the in-process tests use.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sandbox.actors import Actors
from sandbox.delivery import Delivery
from sandbox.errors import ApiError
from sandbox.workspace import BOT_USER_ID, TEAM_ID, TEAM_NAME, Json, Workspace

STATIC_DIR = Path(__file__).parent / "static"
SHUTDOWN = {"kind": "_shutdown"}
Endpoint = Callable[[Request], Awaitable[Response]]


def _errors_as_400(func: Endpoint) -> Endpoint:
    """Turn an ApiError into a 400 with Slack's error body, for the page to show."""

    async def wrapper(request: Request) -> Response:
        try:
            return await func(request)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=400)

    return wrapper


async def _json(request: Request) -> Json:
    raw = await request.body()
    if not raw:
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ApiError("invalid_json")
    return body


def _response_json(resp: Any) -> Json:
    """A BotResponse as JSON for the page (status, error, body)."""
    if resp is None:
        return {"status": None, "error": None, "body": None}
    return {"status": resp.status, "error": resp.error, "body": resp.json()}


class UiApi:
    """Routes that let a person (or a test over HTTP) use the sandbox."""

    def __init__(self, workspace: Workspace, actors: Actors, delivery: Delivery) -> None:
        self.ws = workspace
        self.actors = actors
        self.delivery = delivery

    def routes(self) -> list[BaseRoute]:
        get, post = ["GET"], ["POST"]
        table: list[tuple[str, Endpoint, list[str]]] = [
            ("/sandbox/api/state", self.state, get),
            ("/sandbox/api/channels/{channel}/messages", self.channel_messages, get),
            ("/sandbox/api/channels/{channel}/threads/{ts}", self.thread_messages, get),
            ("/sandbox/api/messages", self.post_message, post),
            ("/sandbox/api/actions", self.click, post),
            ("/sandbox/api/dms", self.open_dm, post),
            ("/sandbox/api/home", self.open_home, post),
            ("/sandbox/api/commands", self.run_command, post),
            ("/sandbox/api/views/{user}", self.view, get),
            ("/sandbox/api/views/{user}/submit", self.submit, post),
            ("/sandbox/api/views/{user}/close", self.close, post),
            ("/sandbox/api/calls", self.calls, get),
            ("/sandbox/api/deliveries", self.deliveries, get),
            ("/sandbox/api/reset", self.reset, post),
            ("/sandbox/response/{token}", self.response_url, post),
        ]
        routes: list[BaseRoute] = [
            Route(path, _errors_as_400(fn), methods=methods) for path, fn, methods in table
        ]
        routes += [
            Route("/", self.index, methods=get),
            Route("/archives/{channel}/{message}", self.archive_link, methods=get),
            Route("/sandbox/stream", self.stream, methods=get),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
        return routes

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    async def archive_link(self, request: Request) -> Response:
        """Slack's message links (`/archives/C…/p…?thread_ts=…`, as permalinks and the bot's
        App Home use them) open the page on that channel and thread."""
        channel = request.path_params["channel"]
        message = str(request.path_params["message"]).removeprefix("p")
        ts = f"{message[:-6]}.{message[-6:]}" if message.isdigit() and len(message) > 6 else ""
        thread = request.query_params.get("thread_ts") or ts
        target = urllib.parse.urlencode({"channel": channel, "thread": thread})
        return RedirectResponse(f"/#{target}", status_code=302)

    # ----- reading ------------------------------------------------------

    async def state(self, request: Request) -> Response:
        """Team, people (with approver flag) and the channels `user` can see."""
        user = request.query_params.get("user", "U0ALICE")
        self.ws.user(user)
        users = [
            {**u.to_dict(), "approver": self.ws.is_approver(u.id)} for u in self.ws.users.values()
        ]
        channels = [
            {**c.to_dict(user), "label": self._label(c.id)} for c in self.ws.visible_channels(user)
        ]
        return JSONResponse(
            {
                "team": {"id": TEAM_ID, "name": TEAM_NAME},
                "bot_user_id": BOT_USER_ID,
                "users": users,
                "channels": channels,
            }
        )

    def _label(self, channel_id: str) -> str:
        chan = self.ws.channels[channel_id]
        return "approvals" if chan.is_im else chan.name

    def _ephemerals(self, user: str, channel: str, thread_ts: str | None) -> list[Json]:
        return [
            e.to_dict()
            for e in self.ws.ephemerals
            if e.visible_to == user and e.channel == channel and e.thread_ts == thread_ts
        ]

    async def channel_messages(self, request: Request) -> Response:
        """Top-level messages oldest first, merged with `user`'s ephemerals."""
        chan = self.ws.channel(request.path_params["channel"])
        user = request.query_params.get("user", "")
        msgs = [m.to_dict() for m in reversed(self.ws.history(chan.id))]
        msgs += self._ephemerals(user, chan.id, None)
        msgs.sort(key=lambda m: float(m["ts"]))
        return JSONResponse({"channel": chan.id, "messages": msgs})

    async def thread_messages(self, request: Request) -> Response:
        chan = self.ws.channel(request.path_params["channel"])
        root = request.path_params["ts"]
        user = request.query_params.get("user", "")
        msgs = [m.to_dict() for m in self.ws.thread(chan.id, root)]
        msgs += self._ephemerals(user, chan.id, root)
        msgs.sort(key=lambda m: float(m["ts"]))
        status = self.ws.status_of(chan.id, root)  # the thread's status line
        session = self.ws.session_of(chan.id, root)  # the agent session's state, if any
        return JSONResponse(
            {
                "channel": chan.id,
                "thread_ts": root,
                "messages": msgs,
                "status": status,
                "session": session,
            }
        )

    async def view(self, request: Request) -> Response:
        user = request.path_params["user"]
        stack = [v.to_dict() for v in self.ws.modal_stack(user)]
        home = self.ws.homes.get(user)
        return JSONResponse({"stack": stack, "home": home.to_dict() if home else None})

    async def calls(self, request: Request) -> Response:
        method = request.query_params.get("method")
        calls = self.ws.calls_of(method) if method else self.ws.calls
        return JSONResponse({"calls": [c.to_dict() for c in calls]})

    async def deliveries(self, request: Request) -> Response:
        return JSONResponse({"deliveries": [d.to_dict() for d in self.ws.deliveries]})

    # ----- acting -------------------------------------------------------

    async def post_message(self, request: Request) -> Response:
        body = await _json(request)
        ts = await self.actors.post_message(
            str(body.get("user")),
            str(body.get("channel")),
            str(body.get("text") or ""),
            body.get("thread_ts") or None,
        )
        return JSONResponse({"ok": True, "ts": ts})

    async def click(self, request: Request) -> Response:
        body = await _json(request)
        resp = await self.actors.click_button(
            str(body.get("user")),
            str(body.get("channel")),
            str(body.get("message_ts")),
            str(body.get("action_id")),
            body.get("block_id"),
            body.get("value"),
        )
        return JSONResponse({"ok": True, **_response_json(resp)})

    async def open_dm(self, request: Request) -> Response:
        body = await _json(request)
        return JSONResponse({"ok": True, "channel": self.actors.open_dm(str(body.get("user")))})

    async def open_home(self, request: Request) -> Response:
        body = await _json(request)
        await self.actors.open_home(str(body.get("user")), str(body.get("tab") or "home"))
        return JSONResponse({"ok": True})

    async def run_command(self, request: Request) -> Response:
        """`{"user", "channel", "text": "/approvals args"}`: what the composer sends."""
        body = await _json(request)
        command, _, text = str(body.get("text") or "").strip().partition(" ")
        resp = await self.actors.run_command(
            str(body.get("user")), str(body.get("channel")), command, text.strip()
        )
        return JSONResponse({"ok": True, **_response_json(resp)})

    async def submit(self, request: Request) -> Response:
        body = await _json(request)
        result = await self.actors.submit_modal(request.path_params["user"], body.get("values"))
        return JSONResponse(
            {
                "ok": True,
                "response_action": result.response_action,
                "errors": result.errors,
                "closed": result.closed,
                "view": result.view,
                **_response_json(result.response),
            }
        )

    async def close(self, request: Request) -> Response:
        resp = await self.actors.close_modal(request.path_params["user"])
        return JSONResponse({"ok": True, **_response_json(resp)})

    async def reset(self, request: Request) -> Response:
        self.ws.reset()
        return JSONResponse({"ok": True})

    async def response_url(self, request: Request) -> Response:
        body = await _json(request)
        return JSONResponse(self.actors.respond(request.path_params["token"], body))

    # ----- live updates -----------------------------------------------

    async def stream(self, request: Request) -> Response:
        """Server-Sent Events: one `data:` line per workspace change."""
        return StreamingResponse(
            self._events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def _events(self) -> AsyncIterator[str]:
        queue = self.ws.subscribe()
        try:
            yield "retry: 1000\n\n"
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if change == SHUTDOWN:
                    return
                yield f"data: {json.dumps(change)}\n\n"
        finally:
            self.ws.unsubscribe(queue)
