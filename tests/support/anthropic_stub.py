"""A loopback HTTP stand-in for Anthropic's Messages API, for tests.

Why this exists: the bot's agent talks to Claude through ``langchain-anthropic``,
which talks to the real ``anthropic`` SDK, which talks HTTP. Mocking at the
Python level (patching ``ChatAnthropic`` or the SDK client) would skip exactly the
layers that break in practice: request serialisation of ``ToolMessage`` history,
the ``tool_use``/``tool_result`` pairing rule the API enforces, SSE parsing,
retry and error mapping. So this stub sits at the HTTP boundary instead and lets
the real SDK stack run unchanged against ``127.0.0.1``.

Usage::

    async with running_anthropic_stub() as stub:
        stub.reply_tool_calls([("lookup_user", {"email": "a@b.c"})])
        stub.reply_text("Done.")
        llm = ChatAnthropic(
            model="claude-sonnet-4-6", base_url=stub.url, api_key=stub.api_key, max_retries=0
        )
        ...
        assert stub.requests[1]["messages"][-1]["content"][0]["type"] == "tool_result"

The server runs in the *current* event loop, so only async clients
(``AsyncAnthropic``, ``ChatAnthropic.ainvoke``/``astream``) may be used directly
from the test; a synchronous client would block the loop that has to answer it
and must be driven via ``asyncio.to_thread`` instead.

The response shapes (non-streaming ``Message`` JSON and the SSE event sequence)
were taken from the installed SDK's ``anthropic/types`` models and
``langchain_anthropic/chat_models.py``, not guessed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import secrets
import socket
import string
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

from aiohttp import web

__all__ = [
    "AnthropicStub",
    "ErrorReply",
    "RecordedRequest",
    "Reply",
    "ReplyFn",
    "TextReply",
    "ToolCall",
    "ToolCallsReply",
    "running_anthropic_stub",
]

JSON: TypeAlias = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    """Return an id shaped like the API's (``msg_01`` + 22 base62 chars).

    Shape matters because some code (and humans reading failures) recognise ids by
    prefix; randomness matters because tool_use ids must be unique per conversation.
    """
    return prefix + "01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class ToolCall:
    """One ``tool_use`` block the fake model emits.

    ``id`` is filled in when the reply is queued (not when it is served), so a
    test can know the id up front and assert on the ``tool_result`` that echoes it.
    """

    name: str
    input: Mapping[str, Any]
    id: str = field(default_factory=lambda: _new_id("toolu_"))


@dataclass(frozen=True)
class TextReply:
    """A plain assistant text turn (``stop_reason`` defaults to ``end_turn``)."""

    text: str
    stop_reason: str = "end_turn"


@dataclass(frozen=True)
class ToolCallsReply:
    """An assistant turn with one or more (parallel) ``tool_use`` blocks.

    ``text`` optionally precedes the calls, as Claude often says what it is about
    to do before calling a tool; it becomes a leading ``text`` block.
    """

    calls: tuple[ToolCall, ...]
    text: str | None = None


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error in Anthropic's error shape, e.g. ``529 overloaded_error``.

    ``should_retry`` sets the SDK's ``x-should-retry`` header so a test can decide
    whether the client's retry loop kicks in (``None`` leaves the SDK default,
    which retries 408/409/429/5xx).
    """

    status: int
    error_type: str
    message: str
    should_retry: bool | None = None


Reply: TypeAlias = TextReply | ToolCallsReply | ErrorReply
"""What one scripted turn resolves to."""

ReplyFn: TypeAlias = Callable[[JSON], "Reply | str | Awaitable[Reply | str]"]
"""Dynamic reply: called with the parsed request JSON; a ``str`` means text."""

_Scripted: TypeAlias = Reply | ReplyFn


@dataclass
class RecordedRequest:
    """One request as received: path, lower-cased headers and parsed JSON body.

    ``body`` is ``None`` when the body was not a JSON object. ``status`` is the
    HTTP status the stub answered with (0 while still being answered), so tests
    can tell rejected requests apart. ``path`` excludes the query string (the SDK's
    beta route is ``/v1/messages?beta=true``).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: JSON | None
    status: int

    @property
    def api_key(self) -> str | None:
        """The key presented (``x-api-key`` or ``Authorization: Bearer``), if any."""
        return _presented_key(self.headers)


# ------------------------------------------------------------------------ the stub


def _lower_headers(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _presented_key(headers: Mapping[str, str]) -> str | None:
    """The credential a request carries: ``x-api-key``, else a bearer token."""
    if key := headers.get("x-api-key"):
        return key
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class _ApiError(Exception):
    """Internal: abort handling with an Anthropic-shaped error response."""

    def __init__(
        self, status: int, error_type: str, message: str, *, should_retry: bool | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.should_retry = should_retry


class AnthropicStub:
    """Scriptable fake of ``POST /v1/messages`` (+ ``count_tokens``) on loopback.

    Prefer :func:`running_anthropic_stub`; the class is also an async context
    manager and has explicit :meth:`start`/:meth:`stop` for fixtures that need them.
    """

    def __init__(self, *, api_key: str = "test-key", host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        """The only key accepted (as ``x-api-key`` or bearer token); else a 401."""
        self._host = host
        self._queue: deque[_Scripted] = deque()
        self.recorded: list[RecordedRequest] = []
        """Every request to any path, in arrival order (including rejected ones)."""
        self.errors: list[BaseException] = []
        """Exceptions raised by ``reply_with`` callables (also answered as a 500)."""
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """Base URL for the SDK, e.g. ``http://127.0.0.1:43121``.

        No path suffix on purpose: the SDK appends a slash to ``base_url`` and then
        joins its relative ``/v1/messages`` path onto it, so a bare origin yields
        exactly ``/v1/messages`` (``ChatAnthropic``'s beta route adds ``?beta=true``,
        which the stub accepts too).
        """
        if self._port is None:
            raise RuntimeError("AnthropicStub is not running; use `async with` or start()")
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Bind a free loopback port and start serving in the running event loop.

        The socket is bound here (port 0) rather than by aiohttp so the port is
        known without reaching into private server attributes and without a
        find-free-port/bind race.
        """
        if self._runner is not None:
            raise RuntimeError("AnthropicStub already started")
        app = web.Application()
        app.router.add_post("/v1/messages", self._handle_messages)
        app.router.add_post("/v1/messages/count_tokens", self._handle_count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, 0))
            sock.listen(128)
            sock.setblocking(False)
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._port = int(sock.getsockname()[1])
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving and close client connections (idempotent)."""
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> AnthropicStub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- scripting

    def reply_text(self, text: str, *, stop_reason: str = "end_turn") -> None:
        """Queue a plain text assistant turn."""
        self._queue.append(TextReply(text, stop_reason=stop_reason))

    def reply_tool_calls(
        self,
        calls: Sequence[tuple[str, Mapping[str, Any]] | ToolCall],
        *,
        text: str | None = None,
    ) -> list[ToolCall]:
        """Queue one assistant turn with these (parallel) tool calls.

        Returns the :class:`ToolCall` objects with their ids so the test can match
        them against the ``tool_result`` blocks of the next request.
        """
        if not calls:
            raise ValueError("reply_tool_calls needs at least one call")
        resolved = [c if isinstance(c, ToolCall) else ToolCall(c[0], dict(c[1])) for c in calls]
        self._queue.append(ToolCallsReply(tuple(resolved), text=text))
        return resolved

    def reply_error(
        self,
        status: int,
        error_type: str,
        message: str = "scripted error",
        *,
        should_retry: bool | None = None,
    ) -> None:
        """Queue an error response (e.g. ``529, "overloaded_error"``)."""
        self._queue.append(ErrorReply(status, error_type, message, should_retry))

    def reply_with(self, fn: ReplyFn) -> None:
        """Queue a callable that computes the next turn from the request JSON.

        It is consumed once, like any other queued reply; it may be sync or async
        and may return a ``str`` (text turn) or any :data:`Reply`.
        """
        self._queue.append(fn)

    def extend(self, replies: Iterable[_Scripted]) -> None:
        """Queue several prepared replies at once."""
        self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies have not been consumed yet."""
        return len(self._queue)

    @property
    def requests(self) -> list[JSON]:
        """Parsed bodies of every ``POST /v1/messages`` (answered or rejected), in order."""
        return [
            r.body
            for r in self.recorded
            if r.path == "/v1/messages" and r.method == "POST" and r.body is not None
        ]

    @property
    def last_request(self) -> JSON:
        """The most recent ``/v1/messages`` body; fails loudly if there was none."""
        reqs = self.requests
        if not reqs:
            raise AssertionError("the Anthropic stub has not received any /v1/messages request")
        return reqs[-1]

    def reset(self) -> None:
        """Drop queued replies, recorded requests and recorded callable errors."""
        self._queue.clear()
        self.recorded.clear()
        self.errors.clear()

    # ---------------------------------------------------------------- handlers

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, lambda body: self._answer_messages(request, body))

    async def _handle_count_tokens(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._answer_count_tokens)

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        self.recorded.append(
            RecordedRequest(request.method, request.path, _lower_headers(request), None, 404)
        )
        return _error_response(
            _ApiError(404, "not_found_error", f"Not found: {request.method} {request.path}")
        )

    async def _serve(
        self,
        request: web.Request,
        answer: Callable[[JSON], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Record on arrival, check auth, then answer; errors become API-shaped.

        Recording happens *before* answering so arrival order is preserved for
        concurrent requests and a ``reply_with`` callable already sees its own
        request in :attr:`requests`. The body is parsed even when auth fails, so a
        test can still inspect what a misconfigured client sent.
        """
        body: JSON | None
        try:
            parsed = json.loads(await request.read())
            body = parsed if isinstance(parsed, dict) else None
        except ValueError:
            body = None
        record = RecordedRequest(request.method, request.path, _lower_headers(request), body, 0)
        self.recorded.append(record)
        try:
            self._check_auth(request)
            if body is None:
                raise _ApiError(400, "invalid_request_error", "request body must be a JSON object")
            response = await answer(body)
        except _ApiError as err:
            response = _error_response(err)
        record.status = response.status
        return response

    async def _answer_messages(self, request: web.Request, body: JSON) -> web.StreamResponse:
        _validate_messages_request(body)
        reply = await self._next_reply(body)
        if isinstance(reply, ErrorReply):
            raise _ApiError(
                reply.status, reply.error_type, reply.message, should_retry=reply.should_retry
            )
        message = _build_message(body, reply)
        if body.get("stream") is True:
            return await _stream_message(request, message)
        return web.json_response(message, headers=_common_headers())

    @staticmethod
    async def _answer_count_tokens(body: JSON) -> web.StreamResponse:
        if not isinstance(body.get("messages"), list):
            raise _ApiError(400, "invalid_request_error", "messages: Field required")
        return web.json_response(
            {"input_tokens": _estimate_input_tokens(body)}, headers=_common_headers()
        )

    # ---------------------------------------------------------------- helpers

    def _check_auth(self, request: web.Request) -> None:
        """Mirror the API's order: authentication first, then the version header.

        The key is accepted from ``x-api-key`` *or* ``Authorization: Bearer``, as
        the real API does: the installed SDK (anthropic 2.13) sends ``api_key`` as a
        bearer token, not as ``x-api-key``, so insisting on the latter would reject
        the very client this stub exists to exercise.
        """
        key = _presented_key(request.headers)
        if not key:
            raise _ApiError(401, "authentication_error", "x-api-key header is required")
        if key != self.api_key:
            raise _ApiError(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise _ApiError(400, "invalid_request_error", "anthropic-version: header is required")

    async def _next_reply(self, body: JSON) -> Reply:
        """Pop the next scripted turn; an empty queue is a loud, non-retried 500.

        ``x-should-retry: false`` keeps the SDK from retrying the 500 with backoff,
        so a missing script line fails the test immediately with a clear message.
        """
        if not self._queue:
            raise _ApiError(
                500,
                "api_error",
                "Anthropic stub: no scripted reply queued for request "
                f"#{len(self.requests)} (last message: {_summarise_last_message(body)}). "
                "Queue one with reply_text/reply_tool_calls/reply_with.",
                should_retry=False,
            )
        item = self._queue.popleft()
        if isinstance(item, TextReply | ToolCallsReply | ErrorReply):
            return item
        try:
            # Widened on purpose: test callables are often untyped lambdas.
            result = cast(object, item(body))
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            self.errors.append(exc)
            raise _ApiError(
                500,
                "api_error",
                f"Anthropic stub: reply_with callable raised {exc!r}",
                should_retry=False,
            ) from exc
        if isinstance(result, str):
            return TextReply(result)
        if isinstance(result, TextReply | ToolCallsReply | ErrorReply):
            return result
        err = TypeError(f"reply_with callable returned unsupported {type(result).__name__}")
        self.errors.append(err)
        raise _ApiError(500, "api_error", f"Anthropic stub: {err}", should_retry=False)


@asynccontextmanager
async def running_anthropic_stub(
    *, api_key: str = "test-key", host: str = "127.0.0.1"
) -> AsyncIterator[AnthropicStub]:
    """Serve an :class:`AnthropicStub` for the duration of the ``async with`` block."""
    stub = AnthropicStub(api_key=api_key, host=host)
    await stub.start()
    try:
        yield stub
    finally:
        await stub.stop()


# ------------------------------------------------------------ request validation


def _blocks(content: Any) -> list[JSON]:
    """Content as a block list; the API accepts a bare string as one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What the real API accepts as a client tool's name: no dot, at most 64 characters."""


def _validate_tool_names(tools: Any) -> None:
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise _ApiError(
                400,
                "invalid_request_error",
                f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
            )


def _validate_messages_request(body: JSON) -> None:
    """Reject what the real API rejects *and* our code could plausibly get wrong.

    Deliberately minimal: required fields, roles, and the tool_use/tool_result
    pairing rule, whose violation is the classic agent-loop bug (e.g. resuming a
    conversation after an interrupted tool call). Error texts copy the real API's.
    """
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise _ApiError(400, "invalid_request_error", f"{name}: Field required")
    _validate_tool_names(body.get("tools"))
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise _ApiError(400, "invalid_request_error", "messages: at least one message is required")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise _ApiError(
                400,
                "invalid_request_error",
                f"messages.{i}.role: Input should be 'user' or 'assistant'",
            )

    for i, msg in enumerate(messages):
        nxt = messages[i + 1] if i + 1 < len(messages) else None
        if msg["role"] == "assistant":
            use_ids = [
                b.get("id") for b in _blocks(msg.get("content")) if b.get("type") == "tool_use"
            ]
            if not use_ids:
                continue
            answered: set[Any] = set()
            if nxt is not None and nxt["role"] == "user":
                answered = {
                    b.get("tool_use_id")
                    for b in _blocks(nxt.get("content"))
                    if b.get("type") == "tool_result"
                }
            missing = [str(u) for u in use_ids if u not in answered]
            if missing:
                raise _ApiError(
                    400,
                    "invalid_request_error",
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have "
                    "a corresponding `tool_result` block in the next message.",
                )
        else:
            prev = messages[i - 1] if i > 0 else None
            known = (
                {b.get("id") for b in _blocks(prev.get("content")) if b.get("type") == "tool_use"}
                if prev is not None and prev["role"] == "assistant"
                else set()
            )
            for j, block in enumerate(_blocks(msg.get("content"))):
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in known:
                    raise _ApiError(
                        400,
                        "invalid_request_error",
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                        "block must have a corresponding `tool_use` block in the previous message.",
                    )


# -------------------------------------------------------------- response building


def _estimate_tokens(text: str) -> int:
    """~4 characters per token: plausible numbers, never zero."""
    return max(1, len(text) // 4)


def _estimate_input_tokens(body: Mapping[str, Any]) -> int:
    parts = {k: body.get(k) for k in ("system", "messages", "tools") if body.get(k) is not None}
    return _estimate_tokens(json.dumps(parts, sort_keys=True, default=str))


def _summarise_last_message(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return "<none>"
    text = json.dumps(messages[-1].get("content"), default=str)
    return f"{messages[-1].get('role')}: {text[:200]}"


def _build_message(body: Mapping[str, Any], reply: TextReply | ToolCallsReply) -> JSON:
    """Build a non-streaming ``Message`` exactly as the API returns it."""
    content: list[JSON] = []
    if isinstance(reply, TextReply):
        content.append({"type": "text", "text": reply.text})
        stop_reason = reply.stop_reason
    else:
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        content.extend(
            {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.input)}
            for c in reply.calls
        )
        stop_reason = "tool_use"
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model", "")),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": _estimate_input_tokens(body),
            "output_tokens": _estimate_tokens(json.dumps(content)),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _stream_events(message: JSON) -> list[tuple[str, JSON]]:
    """The SSE sequence the API sends for ``message``, in the documented order.

    message_start (empty content, null stop_reason) -> per block: content_block_start
    (text "" / tool_use with input {}), deltas (text_delta / input_json_delta with
    the JSON split into fragments, first one empty as the API does), content_block_stop
    -> message_delta (stop_reason, usage) -> message_stop. A ``ping`` follows the
    first block start as in the API docs; the SDK must ignore it. Text and JSON are
    split into several deltas so client-side accumulation is actually exercised.
    """
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[tuple[str, JSON]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(message["content"]):
        deltas: list[JSON]
        if block["type"] == "text":
            opening: JSON = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _chunks(block["text"], 8)]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            fragments = ["", *_chunks(json.dumps(block["input"]), 10)]
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in fragments]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


async def _stream_message(request: web.Request, message: JSON) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200,
        headers={
            **_common_headers(),
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
        },
    )
    await response.prepare(request)
    for event, data in _stream_events(message):
        await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        await asyncio.sleep(0)  # let the client see separate chunks, like a real stream
    await response.write_eof()
    return response


def _common_headers() -> dict[str, str]:
    return {"request-id": _new_id("req_")}


def _error_response(err: _ApiError) -> web.Response:
    """Anthropic's error envelope, plus the ``x-should-retry`` hint when scripted."""
    headers = _common_headers()
    if err.should_retry is not None:
        headers["x-should-retry"] = "true" if err.should_retry else "false"
    payload = {
        "type": "error",
        "error": {"type": err.error_type, "message": err.message},
        "request_id": headers["request-id"],
    }
    return web.json_response(payload, status=err.status, headers=headers)
