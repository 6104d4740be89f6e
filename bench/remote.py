"""``python -m bench --remote``: the remote agent backend (``AGENT_URL``) over a bare
``langgraph_sdk`` resume, on the same ``langgraph dev`` in the same run.

Every side runs this project's graph (``langgraph.json``) on one in-memory LangGraph Server on
loopback, with the offline planner, in turn, on fresh threads brought to their first review
untimed: an Approve click through the real bot (its own process, ``AGENT_URL`` set, its own
PostgreSQL, the Web API stand-in of ``bench.run``) until its card is updated and the tool's
result posted; :meth:`graph.remote.RemoteAgent.answer` alone (the check that the thread is
interrupted and the review still pending, the run refused on a busy thread, the result read
back); and one bare ``runs.wait(command={"resume": {interrupt_id: ...}})``. Not part of
``--quick``: it needs ``langgraph-cli[inmem]`` (a development dependency) and a server start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.run import environment
from bench.stats import median, percentile
from graph import Approve, Refused
from graph.remote import RemoteAgent, RemoteSettings, remote_client

ROOT = Path(__file__).resolve().parent.parent
GRAPH = "agent"
TEXT = "what's the weather in sf?"
REQUESTER, APPROVER = "U0ALICE", "U0BOB"
TARGET_RATIO = 1.5
START_SECONDS = 180.0


@dataclass
class RemoteResults:
    clicks: list[float] = field(default_factory=list)
    """Click sent to the bot (``AGENT_URL`` set) -> card updated and tool result posted."""
    ours: list[float] = field(default_factory=list)
    """``RemoteAgent.answer`` alone, in this process."""
    bare: list[float] = field(default_factory=list)

    def lines(self) -> list[str]:
        bare = median(self.bare)
        lines = [
            f"bare langgraph_sdk resume p50 {bare * 1000:.1f} ms, "
            f"p99 {percentile(self.bare, 99) * 1000:.1f} ms ({len(self.bare)} samples)"
        ]
        for label, values in (("click->applied", self.clicks), ("remote answer", self.ours)):
            ratio = median(values) / bare
            verdict = "pass" if ratio <= TARGET_RATIO else "miss"
            lines.append(
                f"{label} p50 {median(values) * 1000:.1f} ms, "
                f"p99 {percentile(values, 99) * 1000:.1f} ms; / bare resume: {ratio:.2f}x "
                f"(target <= {TARGET_RATIO}x): {verdict}"
            )
        return lines


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def langgraph_dev() -> Iterator[str]:
    """``langgraph dev`` on loopback in a temporary directory, hosting ``langgraph.json``'s
    graph; nothing leaves the machine (no browser, tracing, analytics or version check)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-langgraph-"))
    graphs = json.loads((ROOT / "langgraph.json").read_text())["graphs"]
    config = {
        "dependencies": [str(ROOT)],
        "graphs": {
            name: f"{(ROOT / spec.rpartition(':')[0]).resolve()}:{spec.rpartition(':')[2]}"
            for name, spec in graphs.items()
        },
    }
    (workdir / "langgraph.json").write_text(json.dumps(config))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ANTHROPIC_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")
    }
    env.update(
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGGRAPH_NO_VERSION_CHECK="true",
        PYTHONPATH=str(ROOT),
    )
    port = _port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "server.log").open("wb")
    command = [sys.executable, "-m", "langgraph_cli", "dev", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--config", str(workdir / "langgraph.json")]
    command += ["--no-browser", "--no-reload", "--server-log-level", "WARNING"]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"langgraph dev exited ({workdir / 'server.log'})")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/ok", timeout=2, trust_env=False).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("langgraph dev did not start")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def _ours(agent: RemoteAgent, index: int) -> float:
    thread = f"bench-remote-{index}"
    outcome = await agent.start_turn(thread, TEXT, user=REQUESTER, message_id=f"m-{index}")
    if isinstance(outcome, Refused) or len(outcome.pending) != 1:
        raise RuntimeError(f"expected one review, got {outcome}")
    started = time.perf_counter()
    applied = await agent.answer(thread, outcome.pending[0].interrupt_id, Approve(APPROVER))
    elapsed = time.perf_counter() - started
    if isinstance(applied, Refused) or not applied.tool_results:
        raise RuntimeError(f"the decision was not applied: {applied}")
    return elapsed


async def _bare(agent: RemoteAgent, assistant: str) -> float:
    client = agent.client  # the same HTTP client and connections as ours
    thread = await client.threads.create()
    turn: dict[str, Any] = {"messages": [{"type": "human", "content": TEXT, "name": REQUESTER}]}
    await client.runs.wait(thread["thread_id"], assistant, input=turn)
    state = await client.threads.get(thread["thread_id"])
    [interrupt] = [item for items in (state.get("interrupts") or {}).values() for item in items]
    started = time.perf_counter()
    await client.runs.wait(
        thread["thread_id"],
        assistant,
        command={"resume": {interrupt["id"]: {"action": "continue", "by": APPROVER}}},
    )
    return time.perf_counter() - started


async def measure(samples: int, warmup: int = 3) -> RemoteResults:
    """Interleaved: a click through the bot, ``RemoteAgent.answer``, a bare resume."""
    results = RemoteResults()
    with langgraph_dev() as url:
        client = remote_client(RemoteSettings(url=url, assistant=GRAPH))
        agent = RemoteAgent(client, GRAPH)
        try:
            assistant = await agent.assistant()
            async with environment(None, agent_url=url, text=TEXT, tool="weather_search") as env:
                for index in range(samples + warmup):
                    [review] = await env.create_reviews(1)
                    _, click = await env.click(review)
                    ours, bare = await _ours(agent, index), await _bare(agent, assistant)
                    if index >= warmup:
                        results.clicks.append(click)
                        results.ours.append(ours)
                        results.bare.append(bare)
        finally:
            await client.http.client.aclose()
    return results
