"""Against a real LangGraph Server (``langgraph dev``, tests/support/langgraph_dev.py), through
the real ``langgraph_sdk`` clients, async (``get_client``) and sync (``get_sync_client``), with
``runs.wait`` and ``runs.stream``: the seed's three scenarios on our graph, Agent Inbox's four
responses on it, and HumanInTheLoopMiddleware's decisions on it and on a stock ``create_agent``.
Nothing is mocked: the server runs the graphs and keeps their checkpoints."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from langgraph_sdk import get_client, get_sync_client

from graph.decisions import Edit
from graph.protocols import classify, is_human_interrupt, pending_actions, resume_value
from graph.tools.weather import demo_weather
from tests.support.langgraph_dev import LangGraphDev, running_langgraph_dev

QUESTION = "what's the weather in sf?"
SEED_FEEDBACK = "User requested changes: use <city, country> format for location"
SF = "San Francisco, USA"


@dataclass
class RunResult:
    """What one run left: its pending interrupts, the thread's messages, and (streamed runs)
    the nodes that reported updates, in order."""

    interrupts: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    nodes: list[str] = field(default_factory=list)

    def tool_results(self) -> list[str]:
        return [str(m["content"]) for m in self.messages if m["type"] == "tool"]

    def reply(self) -> str:
        return str(self.messages[-1]["content"])


def _from_chunks(chunks: list[Any]) -> RunResult:
    nodes: list[str] = []
    interrupts: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for chunk in chunks:
        if chunk.event == "error":
            raise AssertionError(f"the run failed: {chunk.data}")
        if chunk.event == "updates":
            for node, update in chunk.data.items():
                nodes.append(node)
                if node == "__interrupt__":
                    interrupts = list(update)
        elif chunk.event == "values":
            messages = chunk.data.get("messages", messages)
    return RunResult(interrupts, messages, nodes)


def _from_wait(result: dict[str, Any]) -> RunResult:
    return RunResult(list(result.get("__interrupt__", [])), list(result.get("messages", [])))


@dataclass
class Driver:
    """One way of talking to the server: which client, and ``wait`` or ``stream``."""

    url: str
    client_kind: str  # "async" | "sync"
    method: str  # "wait" | "stream"

    async def thread(self) -> str:
        if self.client_kind == "sync":
            created = await asyncio.to_thread(get_sync_client(url=self.url).threads.create)
        else:
            created = await get_client(url=self.url).threads.create()
        return str(created["thread_id"])

    async def run(
        self, thread_id: str, graph: str, *, text: str | None = None, resume: Any = None
    ) -> RunResult:
        request: dict[str, Any] = (
            {"input": {"messages": [{"role": "user", "content": text}]}}
            if text is not None
            else {"command": {"resume": resume}}
        )
        if self.method == "stream":
            request["stream_mode"] = ["updates", "values"]
        if self.client_kind == "sync":
            return await asyncio.to_thread(self._run_sync, thread_id, graph, request)
        client = get_client(url=self.url)
        if self.method == "wait":
            return _from_wait(await client.runs.wait(thread_id, graph, **request))
        return _from_chunks([c async for c in client.runs.stream(thread_id, graph, **request)])

    def _run_sync(self, thread_id: str, graph: str, request: dict[str, Any]) -> RunResult:
        client = get_sync_client(url=self.url)
        if self.method == "wait":
            return _from_wait(client.runs.wait(thread_id, graph, **request))
        return _from_chunks(list(client.runs.stream(thread_id, graph, **request)))


DRIVERS = [("async", "wait"), ("async", "stream"), ("sync", "wait"), ("sync", "stream")]


@pytest.fixture(params=DRIVERS, ids=["-".join(d) for d in DRIVERS])
def driver(request: pytest.FixtureRequest, langgraph_dev: LangGraphDev) -> Driver:
    client_kind, method = request.param
    return Driver(langgraph_dev.url, client_kind, method)


async def ask(driver: Driver, graph: str) -> tuple[str, dict[str, Any]]:
    """Start a thread with the seed's question; its one interrupt."""
    thread_id = await driver.thread()
    first = await driver.run(thread_id, graph, text=QUESTION)
    [pending] = first.interrupts
    return thread_id, pending


# ---- the seed's three scenarios -----------------------------------------------------------


async def test_seed_approve(driver: Driver, langgraph_dev: LangGraphDev) -> None:
    thread_id, pending = await ask(driver, langgraph_dev.agent)
    assert pending["value"]["question"] == "Is this correct?"
    assert pending["value"]["tool_call"]["args"] == {"city": "sf"}
    done = await driver.run(thread_id, langgraph_dev.agent, resume={"action": "continue"})
    assert done.interrupts == []
    assert done.tool_results() == [demo_weather("sf")]
    if driver.method == "stream":
        assert done.nodes == ["human_review_node", "run_tool", "call_llm"]


async def test_seed_edit(driver: Driver, langgraph_dev: LangGraphDev) -> None:
    thread_id, _ = await ask(driver, langgraph_dev.agent)
    done = await driver.run(
        thread_id, langgraph_dev.agent, resume={"action": "update", "data": {"city": SF}}
    )
    assert done.interrupts == []
    assert done.tool_results() == [demo_weather(SF)]
    assert demo_weather(SF) in done.reply()


async def test_seed_feedback_then_approve(driver: Driver, langgraph_dev: LangGraphDev) -> None:
    """The seed's words; the offline planner re-proposes, so a second interrupt follows (no
    run_tool between: the feedback goes straight back to the model); then approve."""
    thread_id, pending = await ask(driver, langgraph_dev.agent)
    again = await driver.run(
        thread_id, langgraph_dev.agent, resume={"action": "feedback", "data": SEED_FEEDBACK}
    )
    [second] = again.interrupts
    assert second["id"] != pending["id"]
    assert second["value"]["tool_call"]["args"] == {"city": SF}
    if driver.method == "stream":
        assert again.nodes == ["human_review_node", "call_llm", "__interrupt__"]
    done = await driver.run(thread_id, langgraph_dev.agent, resume={"action": "continue"})
    assert done.interrupts == []
    assert done.tool_results()[-1] == demo_weather(SF)


# ---- Agent Inbox on our graph -------------------------------------------------------------

# Each run costs about a second (the in-memory server polls its queue every 0.5 s), so the
# full client x method matrix is run for the seed's scenarios only; Agent Inbox's answers go
# as Agent Inbox sends them (async client, runs.stream), the middleware's through the sync
# client and runs.wait.


@pytest.fixture
def inbox_driver(langgraph_dev: LangGraphDev) -> Driver:
    return Driver(langgraph_dev.url, "async", "stream")


@pytest.fixture
def hitl_driver(langgraph_dev: LangGraphDev) -> Driver:
    return Driver(langgraph_dev.url, "sync", "wait")


async def test_our_interrupt_is_a_proper_agent_inbox_interrupt(
    inbox_driver: Driver, langgraph_dev: LangGraphDev
) -> None:
    """As the server hands it out, our value passes Agent Inbox's schema check (an
    ``action_request`` with an ``action``, a ``config``), with every control on."""
    _, pending = await ask(inbox_driver, langgraph_dev.agent)
    value = pending["value"]
    assert is_human_interrupt(value) and "action_requests" not in value
    assert value["action_request"] == {"action": "weather_search", "args": {"city": "sf"}}
    assert all(value["config"].values()) and len(value["config"]) == 4


async def test_agent_inbox_accept(inbox_driver: Driver, langgraph_dev: LangGraphDev) -> None:
    """Agent Inbox sends a list of one response; an accept may carry the unchanged request."""
    thread_id, pending = await ask(inbox_driver, langgraph_dev.agent)
    accept = [{"type": "accept", "args": pending["value"]["action_request"]}]
    done = await inbox_driver.run(thread_id, langgraph_dev.agent, resume=accept)
    assert done.interrupts == [] and done.tool_results() == [demo_weather("sf")]


async def test_agent_inbox_edit(inbox_driver: Driver, langgraph_dev: LangGraphDev) -> None:
    thread_id, _ = await ask(inbox_driver, langgraph_dev.agent)
    edit = [{"type": "edit", "args": {"action": "weather_search", "args": {"city": SF}}}]
    done = await inbox_driver.run(thread_id, langgraph_dev.agent, resume=edit)
    assert done.interrupts == [] and done.tool_results() == [demo_weather(SF)]


async def test_agent_inbox_response(inbox_driver: Driver, langgraph_dev: LangGraphDev) -> None:
    thread_id, _ = await ask(inbox_driver, langgraph_dev.agent)
    response = [{"type": "response", "args": SEED_FEEDBACK}]
    again = await inbox_driver.run(thread_id, langgraph_dev.agent, resume=response)
    [second] = again.interrupts
    assert second["value"]["tool_call"]["args"] == {"city": SF}
    assert "User requested changes" in again.tool_results()[-1]  # the words reached the model


async def test_agent_inbox_ignore(inbox_driver: Driver, langgraph_dev: LangGraphDev) -> None:
    """Ignore: nothing runs, and the model is told the reviewer dismissed the call."""
    thread_id, _ = await ask(inbox_driver, langgraph_dev.agent)
    done = await inbox_driver.run(
        thread_id, langgraph_dev.agent, resume=[{"type": "ignore", "args": None}]
    )
    assert done.interrupts == []
    [answer] = done.tool_results()
    assert "Not run" in answer and "dismissed" in answer
    assert "dismissed" in done.reply() and demo_weather("sf") not in str(done.messages)


async def test_an_invalid_agent_inbox_edit_is_asked_again(
    inbox_driver: Driver, langgraph_dev: LangGraphDev
) -> None:
    thread_id, pending = await ask(inbox_driver, langgraph_dev.agent)
    bad = [{"type": "edit", "args": {"action": "weather_search", "args": {"town": "Oslo"}}}]
    again = await inbox_driver.run(thread_id, langgraph_dev.agent, resume=bad)
    [second] = again.interrupts
    assert second["id"] != pending["id"] and second["value"]["error_argument"] == "town"
    assert again.tool_results() == []


# ---- HumanInTheLoopMiddleware's decisions on both graphs ----------------------------------


@pytest.mark.parametrize("graph_key", ["agent", "hitl"])
async def test_middleware_approve(
    hitl_driver: Driver, langgraph_dev: LangGraphDev, graph_key: str
) -> None:
    graph = getattr(langgraph_dev, graph_key)
    thread_id, _ = await ask(hitl_driver, graph)
    done = await hitl_driver.run(thread_id, graph, resume={"decisions": [{"type": "approve"}]})
    assert done.interrupts == []
    assert done.tool_results()[-1].endswith(demo_weather("sf"))


@pytest.mark.parametrize("graph_key", ["agent", "hitl"])
async def test_middleware_edit(
    hitl_driver: Driver, langgraph_dev: LangGraphDev, graph_key: str
) -> None:
    graph = getattr(langgraph_dev, graph_key)
    thread_id, _ = await ask(hitl_driver, graph)
    edit = {"type": "edit", "edited_action": {"name": "weather_search", "args": {"city": SF}}}
    done = await hitl_driver.run(thread_id, graph, resume={"decisions": [edit]})
    assert done.interrupts == []
    assert done.tool_results()[-1].endswith(demo_weather(SF))  # the middleware prefixes a note


@pytest.mark.parametrize("graph_key", ["agent", "hitl"])
async def test_middleware_reject(
    hitl_driver: Driver, langgraph_dev: LangGraphDev, graph_key: str
) -> None:
    """A reject with a message: the tool does not run and the model reads the message (the
    offline planner behind our graph acts on it and asks again)."""
    graph = getattr(langgraph_dev, graph_key)
    thread_id, _ = await ask(hitl_driver, graph)
    reject = {"type": "reject", "message": SEED_FEEDBACK}
    after = await hitl_driver.run(thread_id, graph, resume={"decisions": [reject]})
    assert demo_weather("sf") not in str(after.messages)
    assert SEED_FEEDBACK in after.tool_results()[-1]
    if graph == langgraph_dev.agent:
        [second] = after.interrupts
        assert second["value"]["tool_call"]["args"] == {"city": SF}
    else:
        assert after.interrupts == [] and SEED_FEEDBACK in after.reply()


# ---- graph/protocols.py against both graphs as served -------------------------------------


@pytest.mark.parametrize(("graph_key", "shape"), [("agent", "seed"), ("hitl", "hitl")])
async def test_protocols_read_and_answer_what_the_server_serves(
    langgraph_dev: LangGraphDev, graph_key: str, shape: str
) -> None:
    """What a remote backend does: classify the interrupt, list its actions, answer them with
    our typed decision in the shape it expects."""
    some_driver = Driver(langgraph_dev.url, "sync", "stream")
    graph = getattr(langgraph_dev, graph_key)
    thread_id, pending = await ask(some_driver, graph)
    value = pending["value"]
    assert classify(value) == shape
    [action] = pending_actions(value)
    assert (action.name, dict(action.args)) == ("weather_search", {"city": "sf"})
    assert {"approve", "edit", "feedback"} <= action.allowed
    resume = resume_value(value, [Edit({"city": SF}, by="U123")])
    done = await some_driver.run(thread_id, graph, resume=resume)
    assert done.interrupts == []
    assert done.tool_results()[-1].endswith(demo_weather(SF))


# ---- the harness itself -------------------------------------------------------------------


def test_the_server_hosts_both_graphs(langgraph_dev: LangGraphDev) -> None:
    client = get_sync_client(url=langgraph_dev.url)
    graphs = {a["graph_id"] for a in client.assistants.search()}
    assert {langgraph_dev.agent, langgraph_dev.hitl} <= graphs


def test_the_helper_stops_the_server_and_removes_its_directory() -> None:
    with running_langgraph_dev() as server:
        workdir = server.log.parent
        assert (workdir / "langgraph.json").exists()
        assert get_sync_client(url=server.url).assistants.search()
        assert (workdir / ".langgraph_api").is_dir()  # the server's files stay in its directory
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)  # nothing of its process group is left
