"""Tools of MCP servers, offered to the agent like any other tool (and reviewed by default).

Connection and conversion come from ``langchain-mcp-adapters``: it lists a server's tools and
turns each into a LangChain tool whose input schema is the server's JSON schema and whose
metadata holds the server's annotations (``readOnlyHint``, ``destructiveHint``, ...). No session
is kept open: each call opens its own (a new process for stdio, a new HTTP session), so a
server that died is simply reached again on the next call.

Each call goes through :class:`_KeyedCall`, which gives the request a time limit and puts the
tool call id in the request's ``_meta`` as :data:`IDEMPOTENCY_KEY`; the same id is sent again
when a call is replayed after a crash, so a server can run it once.

Names: Claude accepts tool names matching ``^[a-zA-Z0-9_-]{1,64}$`` (no dot), so a tool is
offered as ``<server>__<tool>`` (:func:`model_name`) and shown to people and matched by the
policy as ``<server>.<tool>`` (:func:`readable_name`). Server names have no underscore, so the
first ``__`` always splits the two. Never imports Slack.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from langchain_core.tools import BaseTool

from graph.tools.mcp_previews import McpPreview, split_companions

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY = "idempotency_key"
"""The ``_meta`` key of a ``tools/call`` request that carries the tool call id."""
SEPARATOR = "__"
SERVER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
"""Lowercase letters, digits and inner hyphens: no underscore, no dot (see module docs)."""
MODEL_NAME_LIMIT = 64
HINTS = ("title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
DEFAULT_TIMEOUT_SECONDS = 30.0


class McpCallError(RuntimeError):
    """A call that did not get an answer from its server (down, dead, too slow); the model
    reads it as the tool's error result."""


@dataclass(frozen=True)
class McpServerSpec:
    """One configured server: a command (stdio) or a URL (streamable HTTP).

    ``env`` and ``headers`` hold resolved values (secrets included: left out of ``repr``).
    ``auto_read_only`` is the configuration's wording of a rule that lets this server's
    read-only tools run without review (None: they are reviewed like the rest).
    ``problem`` is why the server cannot even be tried (e.g. a variable is not set).
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    auto_read_only: str | None = None
    problem: str | None = None

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "streamable_http"

    def connection(self) -> dict[str, Any]:
        """The adapter's connection for this server."""
        if self.command:
            return {
                "transport": "stdio",
                "command": self.command,
                "args": list(self.args),
                "env": dict(self.env) or None,
            }
        return {
            "transport": "streamable_http",
            "url": self.url,
            "headers": dict(self.headers) or None,
            "timeout": timedelta(seconds=self.timeout_seconds),
            "sse_read_timeout": timedelta(seconds=self.timeout_seconds),
        }


@dataclass(frozen=True)
class McpStatus:
    """How a server fared at start-up: its tools (model names), or why it has none."""

    server: str
    transport: str
    tools: tuple[str, ...] = ()
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None


def model_name(server: str, tool: str) -> str:
    """``notes`` + ``add.note`` -> ``notes__add_note``: what Claude accepts, cut to 64."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", tool)
    return f"{server}{SEPARATOR}{cleaned}"[:MODEL_NAME_LIMIT]


def mcp_facts(tool: BaseTool) -> Mapping[str, Any] | None:
    """Server, tool name and annotations of a tool from an MCP server; None for other tools."""
    facts = (tool.metadata or {}).get("mcp")
    return facts if isinstance(facts, Mapping) else None


def readable_name(tool: BaseTool) -> str:
    """``server.tool`` for an MCP tool (the form people read and the policy matches), else
    the tool's own name."""
    facts = mcp_facts(tool)
    return str(facts["readable"]) if facts else tool.name


def hints_of(tool: BaseTool) -> dict[str, Any]:
    """The server's hints about the tool (only those it gave)."""
    facts = mcp_facts(tool)
    return dict(facts["annotations"]) if facts else {}


def is_read_only(hints: Mapping[str, Any]) -> bool:
    return hints.get("readOnlyHint") is True


def is_destructive(hints: Mapping[str, Any]) -> bool:
    """MCP's own default: a tool that is not read-only is destructive unless it says
    ``destructiveHint: false`` (fail closed on a server that gives no hints)."""
    return not is_read_only(hints) and hints.get("destructiveHint") is not False


Handler = Callable[[Any], Awaitable[Any]]


class _KeyedCall:
    """A tool call interceptor that makes the call itself: in a fresh session, within the
    server's time limit, with the tool call id as the idempotency key in ``_meta``.

    The adapter's own call has no way to send ``_meta`` or a per-call limit, so ``handler``
    is not used; every failure to get an answer becomes :class:`McpCallError`.
    """

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec

    async def __call__(self, request: Any, handler: Handler) -> Any:
        call_id = getattr(request.runtime, "tool_call_id", None)
        meta = {IDEMPOTENCY_KEY: call_id} if call_id else None
        spec = self.spec
        try:
            async with asyncio.timeout(spec.timeout_seconds):
                return await _call(spec, request.name, dict(request.args), meta)
        except TimeoutError:
            raise McpCallError(
                f"the MCP server {spec.name!r} did not answer within {spec.timeout_seconds:g} s"
            ) from None
        except Exception as error:
            raise McpCallError(f"the MCP server {spec.name!r} failed: {_reason(error)}") from error


async def _call(
    spec: McpServerSpec, name: str, args: dict[str, Any], meta: dict[str, Any] | None
) -> Any:
    from langchain_mcp_adapters.sessions import create_session

    failure: BaseException | None = None
    result: Any = None
    async with create_session(spec.connection()) as session:  # type: ignore[arg-type]
        await session.initialize()
        try:
            result = await session.call_tool(name, args, meta=meta)
        except Exception as error:  # re-raised outside: the session may swallow it on exit
            failure = error
    if failure is not None:
        raise failure
    return result


def _reason(error: BaseException) -> str:
    """One line for a person: the innermost error of an exception group, with its type."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _renamed(tool: BaseTool, spec: McpServerSpec, companion: str | None = None) -> BaseTool:
    original = tool.name
    hints = {k: v for k, v in (tool.metadata or {}).items() if k in HINTS and v is not None}
    facts: dict[str, Any] = {
        "server": spec.name,
        "tool": original,
        "readable": f"{spec.name}.{original}",
        "annotations": hints,
    }
    if companion is not None:
        facts["preview"] = McpPreview(spec, companion)
    return tool.model_copy(
        update={
            "name": model_name(spec.name, original),
            "metadata": {**(tool.metadata or {}), "mcp": facts},
        }
    )


async def load_server(spec: McpServerSpec) -> tuple[list[BaseTool], McpStatus]:
    """The server's tools, or none and why (a server down at start never stops the bot)."""
    from langchain_mcp_adapters.tools import load_mcp_tools

    if spec.problem:
        return [], McpStatus(spec.name, spec.transport, error=spec.problem)
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            found = await load_mcp_tools(
                None,
                connection=spec.connection(),  # type: ignore[arg-type]
                server_name=spec.name,
                tool_interceptors=[_KeyedCall(spec)],
            )
    except TimeoutError:
        error = f"no answer within {spec.timeout_seconds:g} s"
        return [], McpStatus(spec.name, spec.transport, error=error)
    except Exception as failure:
        return [], McpStatus(spec.name, spec.transport, error=_reason(failure))
    offered, companions = split_companions(found, spec.name)
    tools: dict[str, BaseTool] = {}
    for tool in (_renamed(tool, spec, companions.get(tool.name)) for tool in offered):
        if tool.name in tools:
            log.warning("MCP server %s: two tools become %s; kept the first", spec.name, tool.name)
            continue
        tools[tool.name] = tool
    return list(tools.values()), McpStatus(spec.name, spec.transport, tuple(tools))


async def load_servers(
    specs: Sequence[McpServerSpec],
) -> tuple[list[BaseTool], tuple[McpStatus, ...]]:
    """Every server's tools, all servers asked at once; failures are logged, naming each."""
    loaded = await asyncio.gather(*(load_server(spec) for spec in specs))
    tools = [tool for server_tools, _ in loaded for tool in server_tools]
    statuses = tuple(status for _, status in loaded)
    for status in statuses:
        if status.available:
            log.info("MCP server %s: %d tools", status.server, len(status.tools))
        else:
            log.warning("MCP server %s is unavailable: %s", status.server, status.error)
    return tools, statuses


def unavailable_note(statuses: Iterable[McpStatus]) -> str | None:
    """A sentence for the model about servers whose tools are missing, or None."""
    down = [f"{s.server} ({s.error})" for s in statuses if not s.available]
    if not down:
        return None
    return (
        "These tool servers could not be reached when the bot started, so their tools are "
        f"missing: {'; '.join(down)}. If a request needs one of them, say plainly that the "
        "server is unavailable right now and that an operator can check /readyz."
    )
