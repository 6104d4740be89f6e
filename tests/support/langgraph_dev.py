"""A real LangGraph Server for tests: ``langgraph dev`` (``langgraph-cli[inmem]``) on loopback.

:func:`running_langgraph_dev` starts the server as its own process group, in a temporary working
directory (it writes ``.langgraph_api/`` there, next to the ``langgraph.json`` generated for it),
waits until ``GET /ok`` answers, yields a :class:`LangGraphDev` with the base URL, and on exit
stops the whole group (SIGTERM, then SIGKILL after a bounded wait) and removes the directory.

It hosts two graphs:

- ``agent``: this project's graph, exactly as the repository's ``langgraph.json`` names it
  (``./graph/hosted.py:make_graph``, made absolute), with no ``ANTHROPIC_API_KEY`` so the
  offline planner answers;
- ``hitl``: a stock LangChain v1 ``create_agent`` with ``HumanInTheLoopMiddleware``
  (``tests/support/hitl_agent.py``).

Nothing leaves loopback: no browser or Studio (``--no-browser``), no tunnel, no reload watcher,
no LangSmith tracing (``LANGSMITH_TRACING=false`` and no API key: the Studio link and the
organisation lookup need tracing), no CLI analytics (``LANGGRAPH_CLI_NO_ANALYTICS=1``), no
version check against the package index (``LANGGRAPH_NO_VERSION_CHECK=true``), and no license
or control-plane key (without one the server's metadata loop does not start).

Use the session fixture ``langgraph_dev`` (registered in ``tests/conftest.py``)::

    def test_x(langgraph_dev: LangGraphDev) -> None:
        client = get_sync_client(url=langgraph_dev.url)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

AGENT_GRAPH = "agent"
"""The graph id of this project's graph (as in the repository's ``langgraph.json``)."""
HITL_GRAPH = "hitl"
"""The graph id of the stock ``create_agent`` + ``HumanInTheLoopMiddleware``."""

START_TIMEOUT_SECONDS = 180.0
"""Sized for a busy 2-core machine: importing langgraph-api and both graphs takes a few seconds
on a quiet one, several times that when eight test sessions share the cores."""
STOP_TIMEOUT_SECONDS = 30.0

QUIET_ENV: Mapping[str, str] = {
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
}
"""What keeps ``langgraph dev`` and LangSmith from phoning home (see the module docstring)."""

DROPPED_ENV = (
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGSMITH_ENDPOINT",
    "LANGCHAIN_ENDPOINT",
    "LANGGRAPH_CLOUD_LICENSE_KEY",
    "LANGSMITH_CONTROL_PLANE_API_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "AGENT_TOOL_MODULES",
    "AGENT_AUTO_APPROVE",
)
"""Keys that would make the server or the hosted graph reach outside (or behave unlike the
offline graph the tests expect)."""


@dataclass(frozen=True)
class LangGraphDev:
    """A running ``langgraph dev``: its base URL, graph ids, and where its output goes."""

    url: str
    log: Path
    pid: int
    """The server's process id, which is also its process group id."""
    agent: str = AGENT_GRAPH
    hitl: str = HITL_GRAPH

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def server_config(root: Path = ROOT) -> dict[str, object]:
    """The ``langgraph.json`` for the test server: the repository's graphs with paths made
    absolute (the server runs elsewhere), plus the HITL agent; no ``env`` file is read."""
    shipped = json.loads((root / "langgraph.json").read_text())
    graphs: dict[str, str] = {}
    for graph_id, spec in shipped["graphs"].items():
        path, _, variable = str(spec).rpartition(":")
        graphs[graph_id] = f"{(root / path).resolve()}:{variable}" if "/" in path else spec
    graphs[HITL_GRAPH] = "tests.support.hitl_agent:make_agent"
    return {"dependencies": [str(root)], "graphs": graphs}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_env(root: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(QUIET_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


def _command(config: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "langgraph_cli",
        "dev",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config),
        "--no-browser",
        "--no-reload",
        "--server-log-level",
        "WARNING",
    ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group, SIGKILL after a bounded wait; reaps the child."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # anything the server left in its group
    if process.poll() is None:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _wait_until_ready(
    process: subprocess.Popen[bytes], server: LangGraphDev, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"langgraph dev exited with {process.returncode} before answering /ok:\n"
                    + server.log_tail()
                )
            if "already in use" in server.log_tail():
                # langgraph dev would silently move to another port: refuse, the caller retries
                raise PortTaken(server.url)
            try:
                if http.get(f"{server.url}/ok").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"langgraph dev did not answer /ok within {timeout:.0f}s:\n" + server.log_tail()
                )
            time.sleep(0.2)


class PortTaken(RuntimeError):
    """The port picked for the server was taken before it could bind it."""


@contextmanager
def running_langgraph_dev(
    timeout: float = START_TIMEOUT_SECONDS, root: Path = ROOT
) -> Iterator[LangGraphDev]:
    """Start ``langgraph dev``, yield it once ``/ok`` answers, stop it and remove its files."""
    workdir = Path(tempfile.mkdtemp(prefix="approval-bot-langgraph-dev-"))
    try:
        config = workdir / "langgraph.json"
        config.write_text(json.dumps(server_config(root), indent=2))
        for _attempt in range(3):
            port = free_port()
            url, log_path = f"http://127.0.0.1:{port}", workdir / f"server-{port}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    _command(config, port),
                    cwd=workdir,
                    env=server_env(root),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            server = LangGraphDev(url=url, log=log_path, pid=process.pid)
            try:
                try:
                    _wait_until_ready(process, server, timeout)
                except PortTaken:
                    continue
                yield server
                return
            finally:
                _stop(process)
        raise RuntimeError("no free loopback port for langgraph dev after 3 attempts")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def langgraph_dev() -> Iterator[LangGraphDev]:
    """One ``langgraph dev`` for the whole session (see :func:`running_langgraph_dev`)."""
    with running_langgraph_dev() as server:
        yield server
