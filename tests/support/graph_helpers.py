"""Helpers for the graph tests: streaming node updates, tools that count their runs, a fake
Slack Web API client, a subprocess driver for cross-process tests, and the real Claude model
pointed at the Anthropic stub.

Nothing here replaces the code under test: the graph, the service, the checkpointer and the
database are always the real ones. The recording tools and the fake Slack client stand in for
the outside world only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.types import Interrupt
from psycopg import AsyncConnection

from graph import AgentContext, AgentService, AgentSettings, PendingReview, Refused, RunOutcome
from graph.model import ChatModel, build_model
from graph.service import thread_config
from graph.tools.registry import ToolRegistry
from tests.support.anthropic_stub import AnthropicStub

REPO_ROOT = Path(__file__).resolve().parents[2]
CLAUDE_MODEL = "claude-sonnet-4-6"


def claude_model(stub: AnthropicStub, registry: ToolRegistry) -> ChatModel:
    """The agent's own Claude model (``build_model``, langchain-anthropic) with ``registry``'s
    tools, talking to the Anthropic stub instead of the real API."""
    settings = AgentSettings(
        anthropic_api_key=stub.api_key,
        anthropic_base_url=stub.url,
        anthropic_model=CLAUDE_MODEL,
        model_timeout_seconds=20,
    )
    return build_model(settings, registry.tools)


# ------------------------------------------------------------------ streaming the graph


@dataclass(frozen=True)
class Step:
    """One entry of an ``updates`` stream: the node (or ``__interrupt__``) and its update."""

    node: str
    update: Any
    cached: bool = False


async def stream_steps(
    service: AgentService,
    graph_input: Any,
    thread_id: str,
    context: AgentContext | None = None,
) -> list[Step]:
    """Run the compiled graph directly and collect every update it streams, in order."""
    steps: list[Step] = []
    async for chunk in service.graph.astream(
        graph_input,
        thread_config(thread_id),
        context=context or AgentContext(),
        stream_mode="updates",
    ):
        cached = bool(chunk.get("__metadata__", {}).get("cached"))
        for node, update in chunk.items():
            if node != "__metadata__":
                steps.append(Step(node, update, cached))
    return steps


def node_names(steps: Sequence[Step]) -> list[str]:
    """The node names of fresh (not replayed) updates, as the seed prints them."""
    return [step.node for step in steps if not step.cached]


def interrupts_of(steps: Sequence[Step]) -> list[Interrupt]:
    found: list[Interrupt] = []
    for step in steps:
        if step.node == "__interrupt__":
            found.extend(step.update)
    return found


def messages_of(steps: Sequence[Step], node: str) -> list[BaseMessage]:
    return [
        message
        for step in steps
        if step.node == node and not step.cached and isinstance(step.update, dict)
        for message in step.update.get("messages", [])
    ]


async def state_messages(service: AgentService, thread_id: str) -> list[BaseMessage]:
    snapshot = await service.graph.aget_state(thread_config(thread_id))
    return list(snapshot.values.get("messages", []))


def tool_messages(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    return [message for message in messages if isinstance(message, ToolMessage)]


def ai_messages(messages: Sequence[BaseMessage]) -> list[AIMessage]:
    return [message for message in messages if isinstance(message, AIMessage)]


def call_ids(message: AIMessage) -> list[str]:
    """The tool call ids of an AI message (every proposed call must have one)."""
    ids = [call["id"] for call in message.tool_calls]
    assert all(ids), f"a tool call without an id in {message!r}"
    return [str(call_id) for call_id in ids]


def trailing_tool_messages(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    """The tool messages after the last AI message: what answers its tool calls."""
    trailing: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        trailing.insert(0, message)
    return trailing


# ------------------------------------------------------------------ outcomes


def outcome(result: RunOutcome | Refused) -> RunOutcome:
    """Narrow a service result to a RunOutcome, failing with the refusal if it was refused."""
    assert isinstance(result, RunOutcome), f"expected a run, got {result!r}"
    return result


def refusal(result: RunOutcome | Refused) -> Refused:
    assert isinstance(result, Refused), f"expected a refusal, got {result!r}"
    return result


def by_call_id(reviews: Sequence[PendingReview]) -> dict[str, PendingReview]:
    return {review.tool_call_id: review for review in reviews}


# ------------------------------------------------------------------ tools that count


@dataclass
class ToolLog:
    """Every execution of the recording tools, in order: (tool name, arguments)."""

    runs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of(self, name: str) -> list[dict[str, Any]]:
        return [args for tool_name, args in self.runs if tool_name == name]


def recording_weather(log: ToolLog, name: str = "weather_search") -> BaseTool:
    """A weather tool with the seed's signature that records each run."""

    def run(city: str) -> str:
        log.runs.append((name, {"city": city}))
        return f"sunny in {city}"

    return StructuredTool.from_function(
        run, name=name, description="Look up the current weather for a city."
    )


def recording_booking(log: ToolLog) -> BaseTool:
    """A tool with typed, required arguments, to exercise edit validation."""

    def book_hotel(city: str, nights: int) -> str:
        log.runs.append(("book_hotel", {"city": city, "nights": nights}))
        return f"booked {nights} nights in {city}"

    return StructuredTool.from_function(
        book_hotel, name="book_hotel", description="Book a hotel room."
    )


def exploding_tool(log: ToolLog) -> BaseTool:
    def explode(target: str) -> str:
        log.runs.append(("explode", {"target": target}))
        raise ValueError(f"boom at {target}")

    return StructuredTool.from_function(
        explode, name="explode", description="A tool that always fails."
    )


# ------------------------------------------------------------------ a fake Slack workspace


@dataclass
class FakeSlack:
    """The outside world: records Web API calls and answers from a per-method script.

    A method's script is a single reply (answered every time) or a list (consumed in order).
    """

    replies: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        self.calls.append((api_method, dict(json or params or {})))
        return self.answer(api_method)

    def answer(self, api_method: str) -> Any:
        """The scripted reply to one call (overridden to make a call fail)."""
        script = self.replies.get(api_method)
        if script is None:
            return {"ok": False, "error": "unknown_method"}
        if isinstance(script, list):
            return script.pop(0)
        return script

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def calls_of(self, method: str) -> list[tuple[str, dict[str, Any]]]:
        return [(name, body) for name, body in self.calls if name == method]


# ------------------------------------------------------------------ database


async def checkpoint_rows(database_url: str, thread_id: str) -> int:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread_id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


# ------------------------------------------------------------------ other processes


PROBE_MODULE = '''
"""A tool module for cross-process tests: each run appends a line to a shared log file."""

import json
import os

from langchain_core.tools import tool

LOG_PATH = {log_path!r}


@tool
def probe_action(label: str) -> str:
    """Do something that must happen at most once."""
    line = json.dumps({{"pid": os.getpid(), "label": label}}) + "\\n"
    fd = os.open(LOG_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return f"did {{label}} in process {{os.getpid()}}"


TOOLS = [probe_action]
'''


def write_probe_module(directory: Path, module_name: str, log_path: Path) -> None:
    """Create an importable tool module whose tool appends to ``log_path`` (O_APPEND)."""
    (directory / f"{module_name}.py").write_text(PROBE_MODULE.format(log_path=str(log_path)))


def probe_runs(log_path: Path) -> list[dict[str, Any]]:
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


ANSWER_SCRIPT = textwrap.dedent(
    '''
    """Open the agent in this (fresh) process and answer one review; print the result as JSON."""

    import asyncio
    import dataclasses
    import json
    import os
    import sys
    import time
    from pathlib import Path

    from langchain_core.messages import AIMessage

    from graph import AgentSettings, Refused, RunOutcome, open_agent
    from tests.support.scripted_model import ScriptedModel


    async def main() -> None:
        spec = json.loads(sys.argv[1])
        settings = AgentSettings(
            database_url=os.environ["DATABASE_URL"],
            tool_modules=tuple(spec["tool_modules"]),
        )
        model = ScriptedModel([AIMessage(content=spec["reply"])])
        async with open_agent(settings, model=model) as service:
            pending = await service.pending_reviews(spec["thread_id"])
            ready, go = spec.get("ready_file"), spec.get("go_file")
            if ready and go:
                Path(ready).write_text(json.dumps([p.interrupt_id for p in pending]))
                while not Path(go).exists():
                    time.sleep(0.005)
            result = await service.answer(
                spec["thread_id"], spec["interrupt_id"], spec["decision"]
            )
        if isinstance(result, Refused):
            previous = result.previous
            report = {
                "kind": "refused",
                "reason": result.reason,
                "decided_by": previous.decided_by if previous else None,
            }
        else:
            assert isinstance(result, RunOutcome)
            report = {
                "kind": "ran",
                "tool_results": [dataclasses.asdict(r) for r in result.tool_results],
                "reply": result.reply,
                "pending": len(result.pending),
                "model_calls": len(model.seen),
            }
        print("RESULT " + json.dumps(report), flush=True)


    asyncio.run(main())
    '''
)


KILLED_AT_THE_MODEL_SCRIPT = textwrap.dedent(
    '''
    """Open the agent in this (fresh) process and answer one review, with the checkpoint saved
    after the tool ran held back for a while (a slow disk). When the model is called next, say
    so on stdout and block the whole process, event loop included, until killed: whatever was
    not on disk by then never gets there."""

    import asyncio
    import json
    import os
    import sys
    from pathlib import Path

    from graph import AgentSettings, open_agent


    class ModelThatWaitsToBeKilled:
        def bind_tools(self, tools):
            return self

        async def ainvoke(self, input, config=None):
            print("MODEL CALLED", flush=True)
            sys.stdin.read()  # blocks until the parent kills this process (or goes away)
            raise SystemExit("the parent went away")


    async def main() -> None:
        spec = json.loads(sys.argv[1])
        settings = AgentSettings(
            database_url=os.environ["DATABASE_URL"],
            tool_modules=tuple(spec["tool_modules"]),
        )
        async with open_agent(settings, model=ModelThatWaitsToBeKilled()) as service:
            saver = service.graph.checkpointer
            save = saver.aput

            async def slow_once_the_tool_ran(*args, **kwargs):
                if Path(spec["tool_log"]).exists():
                    await asyncio.sleep(spec["hold_seconds"])
                return await save(*args, **kwargs)

            saver.aput = slow_once_the_tool_ran
            await service.answer(spec["thread_id"], spec["interrupt_id"], spec["decision"])


    asyncio.run(main())
    '''
)


async def answer_in_subprocess(
    *,
    script_dir: Path,
    database_url: str,
    python_path: Sequence[Path],
    spec: Mapping[str, Any],
    script_text: str = ANSWER_SCRIPT,
) -> asyncio.subprocess.Process:
    """Start a fresh Python process that opens the service and answers one review
    (``ANSWER_SCRIPT``, or ``KILLED_AT_THE_MODEL_SCRIPT``: its stdin is a pipe for that one)."""
    script = script_dir / f"agent_{hashlib.sha256(script_text.encode()).hexdigest()[:10]}.py"
    if not script.exists():
        script.write_text(script_text)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PYTHONPATH": os.pathsep.join([*(str(p) for p in python_path), str(REPO_ROOT)]),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        json.dumps(dict(spec)),
        cwd=str(REPO_ROOT),
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def subprocess_result(process: asyncio.subprocess.Process) -> dict[str, Any]:
    """Wait for the process (bounded, so a hang fails instead of blocking the suite)."""
    try:
        stdout_bytes, stderr_bytes = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    stdout, stderr = stdout_bytes.decode(), stderr_bytes.decode()
    assert process.returncode == 0, f"subprocess failed ({process.returncode}):\n{stderr}"
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, f"no result line in:\n{stdout}\n{stderr}"
    result: dict[str, Any] = json.loads(lines[0][len("RESULT ") :])
    return result
