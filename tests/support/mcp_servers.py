"""Real MCP servers for the tests, built with the ``mcp`` package: started as subprocesses over
stdio (the bot starts one per call) or as a streamable-HTTP server on a loopback port.

``python tests/support/mcp_servers.py [--http PORT]``; ``MCP_TEST_NAME`` names the server in
its answers; every call is appended to ``MCP_CALL_LOG`` (JSON lines: tool, args, the
``_meta.idempotency_key``) *before* it acts, so a test knows a call began.

Tools: ``lookup`` (read-only), ``create_ticket`` (typed: text, integer, boolean; not
destructive; its preview is ``preview_create_ticket``, named in its ``_meta``, which is not
logged), ``remove_ticket`` (destructive), ``wait`` (sleeps), ``die`` (the process exits
mid-call), ``hang`` (never answers), ``big`` (a huge result).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

HERE = Path(__file__).resolve()
MCP_PREVIEW_KEY = "slack-approval-bot/preview"
"""``graph.previews.MCP_PREVIEW_KEY``, written out: this file runs as its own process, where
the project may not be importable (a test checks the two agree)."""


def _server() -> FastMCP:
    name = os.environ.get("MCP_TEST_NAME", "tickets")
    server = FastMCP(name, log_level="WARNING")

    def record(tool: str, args: dict[str, Any], ctx: Context[Any, Any, Any]) -> None:
        meta = ctx.request_context.meta
        key = getattr(meta, "idempotency_key", None) if meta is not None else None
        path = os.environ.get("MCP_CALL_LOG")
        if path:
            line = json.dumps({"server": name, "tool": tool, "args": args, "key": key})
            with open(path, "a") as log:
                log.write(line + "\n")

    @server.tool(annotations=ToolAnnotations(title="Look up a city", readOnlyHint=True))
    def lookup(city: str, ctx: Context[Any, Any, Any]) -> str:
        """Look up facts about a city."""
        record("lookup", {"city": city}, ctx)
        return f"{name}: {city} is lovely"

    @server.tool(
        annotations=ToolAnnotations(
            title="Create a ticket",
            readOnlyHint=False,
            destructiveHint=False,
            idempotentHint=False,
            openWorldHint=True,
        ),
        meta={MCP_PREVIEW_KEY: "preview_create_ticket"},
    )
    def create_ticket(
        title: str, priority: int, ctx: Context[Any, Any, Any], urgent: bool = False
    ) -> str:
        """Create a ticket with a priority from 1 to 5."""
        record("create_ticket", {"title": title, "priority": priority, "urgent": urgent}, ctx)
        return f"{name}: created {title!r} (priority {priority}, urgent {urgent})"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def preview_create_ticket(title: str, priority: int, urgent: bool = False) -> str:
        """What create_ticket would do (its preview: never offered to the model, not logged)."""
        queue = "the urgent queue" if urgent else f"queue P{priority}"
        return f"{name} would file <{title}> in {queue}\nTickets open in {queue}: 3"

    @server.tool(
        annotations=ToolAnnotations(
            title="Remove a ticket", readOnlyHint=False, destructiveHint=True
        )
    )
    def remove_ticket(ticket_id: int, ctx: Context[Any, Any, Any]) -> str:
        """Remove a ticket for good."""
        record("remove_ticket", {"ticket_id": ticket_id}, ctx)
        return f"{name}: removed ticket {ticket_id}"

    @server.tool()
    async def wait(seconds: float, ctx: Context[Any, Any, Any]) -> str:
        """Wait, then answer."""
        record("wait", {"seconds": seconds}, ctx)
        await asyncio.sleep(seconds)
        return f"{name}: waited {seconds} s"

    @server.tool()
    def die(ctx: Context[Any, Any, Any]) -> str:
        """The server process exits in the middle of the call."""
        record("die", {}, ctx)
        os._exit(3)

    @server.tool()
    async def hang(ctx: Context[Any, Any, Any]) -> str:
        """Never answers (until the process is killed)."""
        record("hang", {}, ctx)
        await asyncio.Event().wait()
        return "never"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def big(ctx: Context[Any, Any, Any]) -> str:
        """A result far longer than a Slack message."""
        record("big", {}, ctx)
        return "".join(f"line {i:05d} " + "x" * 60 + "\n" for i in range(2000)) + "THE END"

    return server


def calls(log: Path) -> list[dict[str, Any]]:
    """The calls recorded in ``log`` so far, oldest first."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stdio_table(name: str, log: Path, *, extra: str = "") -> str:
    """A ``[mcp.servers.<name>]`` table for a stdio server; the test sets the variables."""
    args = json.dumps([str(HERE)])
    return (
        f"[mcp.servers.{name}]\n"
        f"command = {json.dumps(sys.executable)}\n"
        f"args = {args}\n"
        'env = { MCP_CALL_LOG = { from_env = "MCP_CALL_LOG" }, '
        f'MCP_TEST_NAME = {{ from_env = "MCP_NAME_{name.upper().replace("-", "_")}" }} }}\n'
        f"{extra}"
    )


def environment(log: Path, *names: str) -> dict[str, str]:
    """The variables :func:`stdio_table` reads."""
    values = {"MCP_CALL_LOG": str(log)}
    values.update({f"MCP_NAME_{n.upper().replace('-', '_')}": n for n in names})
    return values


class HttpServer:
    """The test server over streamable HTTP in a subprocess on a loopback port; it can be
    killed and started again on the same port."""

    def __init__(self, log: Path, name: str = "remote", port: int | None = None) -> None:
        self.log = log
        self.name = name
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self, timeout: float = 60) -> None:
        env = {**os.environ, "MCP_CALL_LOG": str(self.log), "MCP_TEST_NAME": self.name}
        self.process = subprocess.Popen(
            [sys.executable, str(HERE), "--http", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the MCP test server exited ({self.process.returncode})")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        raise TimeoutError("the MCP test server did not start listening")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@contextlib.contextmanager
def http_server(log: Path, name: str = "remote") -> Iterator[HttpServer]:
    server = HttpServer(log, name)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def main(argv: list[str]) -> None:
    server = _server()
    if len(argv) >= 2 and argv[0] == "--http":
        server.settings.host = "127.0.0.1"
        server.settings.port = int(argv[1])
        server.settings.log_level = "WARNING"
        server.run("streamable-http")
    else:
        server.run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
