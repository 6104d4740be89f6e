"""langgraph.json serves a graph that answers the seed's own client calls."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graph import AgentSettings
from graph.agent import build_graph
from graph.model import build_model
from graph.protocols import is_human_interrupt
from graph.tools.registry import ToolEntry, ToolRegistry, build_registry
from graph.tools.weather import demo_weather, weather_search
from tests.support.anthropic_stub import running_anthropic_stub
from tests.support.scripted_model import ScriptedModel, tool_calls

ROOT = Path(__file__).resolve().parent.parent


def hosted_graph(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    spec = json.loads((ROOT / "langgraph.json").read_text())["graphs"]["agent"]
    path, _, factory = spec.partition(":")
    module = importlib.import_module(path.removeprefix("./").removesuffix(".py").replace("/", "."))
    graph = getattr(module, factory)()
    graph.checkpointer = InMemorySaver()  # what LangGraph Server does for its own storage
    return graph


async def test_seed_client_calls_continue_update_feedback(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = hosted_graph(monkeypatch)
    config = {"configurable": {"thread_id": "seed"}}
    updates = [
        u
        async for u in graph.astream(  # type: ignore[attr-defined]
            {"messages": [{"role": "user", "content": "what's the weather in sf?"}]},
            config,
            stream_mode="updates",
        )
    ]
    assert list(updates[0]) == ["call_llm"] and "__interrupt__" in updates[-1]
    [pending] = updates[-1]["__interrupt__"]
    assert pending.value["question"] == "Is this correct?"
    assert pending.value["tool_call"]["args"] == {"city": "sf"}

    # Feedback, as the seed words it; the planner re-proposes and a new interrupt follows.
    updates = [
        u
        async for u in graph.astream(  # type: ignore[attr-defined]
            Command(resume={"action": "feedback", "data": 'use "San Francisco, USA"'}),
            config,
            stream_mode="updates",
        )
    ]
    assert [next(iter(u)) for u in updates] == ["human_review_node", "call_llm", "__interrupt__"]
    [again] = updates[-1]["__interrupt__"]
    assert again.value["tool_call"]["args"] == {"city": "San Francisco, USA"}

    updates = [
        u
        async for u in graph.astream(  # type: ignore[attr-defined]
            Command(resume={"action": "update", "data": {"city": "San Francisco, US"}}),
            config,
            stream_mode="updates",
        )
    ]
    assert [next(iter(u)) for u in updates] == ["human_review_node", "run_tool", "call_llm"]
    assert "San Francisco, US" in updates[1]["run_tool"]["messages"][-1].content


async def test_an_invalid_update_keeps_the_review_pending_with_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: an invalid ``update`` used to become feedback to the model. Now nothing runs,
    the model is not called, and the same call is asked again with the error under its field;
    a blank required text is invalid too."""
    graph = hosted_graph(monkeypatch)
    config = {"configurable": {"thread_id": "invalid-update"}}
    first = [
        u
        async for u in graph.astream(  # type: ignore[attr-defined]
            {"messages": [{"role": "user", "content": "what's the weather in sf?"}]},
            config,
            stream_mode="updates",
        )
    ]
    [pending] = first[-1]["__interrupt__"]
    for bad, field in (({"town": "Paris"}, "town"), ({"city": "   "}, "city")):
        updates = [
            u
            async for u in graph.astream(  # type: ignore[attr-defined]
                Command(resume={"action": "update", "data": bad}), config, stream_mode="updates"
            )
        ]
        assert [next(iter(u)) for u in updates] == ["__interrupt__"]
        [again] = updates[-1]["__interrupt__"]
        assert again.id != pending.id
        assert again.value["tool_call"] == pending.value["tool_call"]
        assert again.value["error_argument"] == field and field in again.value["error"]
        pending = again

    updates = [
        u
        async for u in graph.astream(  # type: ignore[attr-defined]
            Command(resume={"action": "update", "data": {"city": "Paris"}}),
            config,
            stream_mode="updates",
        )
    ]
    assert [next(iter(u)) for u in updates] == ["human_review_node", "run_tool", "call_llm"]
    assert "Paris" in updates[1]["run_tool"]["messages"][-1].content


SEED_FEEDBACK = "User requested changes: use <city, country> format for location"


def test_sync_invoke_and_stream_run_the_seed_s_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the nodes were async only, so ``graph.invoke`` raised "No synchronous
    function provided". The seed's feedback scenario, sync: feedback in the seed's words, a
    second interrupt with the city as it asked, then approve."""
    graph: Any = hosted_graph(monkeypatch)
    config = {"configurable": {"thread_id": "sync"}}
    first = graph.invoke(
        {"messages": [{"role": "user", "content": "what's the weather in sf?"}]}, config
    )
    [pending] = first["__interrupt__"]
    assert pending.value["tool_call"]["args"] == {"city": "sf"}

    updates = list(
        graph.stream(
            Command(resume={"action": "feedback", "data": SEED_FEEDBACK}),
            config,
            stream_mode="updates",
        )
    )
    assert [next(iter(u)) for u in updates] == ["human_review_node", "call_llm", "__interrupt__"]
    [again] = updates[-1]["__interrupt__"]
    assert again.value["tool_call"]["args"] == {"city": "San Francisco, USA"}

    done = graph.invoke(Command(resume={"action": "continue"}), config)
    assert "__interrupt__" not in done
    assert demo_weather("San Francisco, USA") in done["messages"][-2].content


def test_the_interrupt_carries_agent_inbox_s_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """As Agent Inbox's ``isAgentInboxInterruptSchema`` reads it: an ``action_request`` with
    its ``action``, and a ``config``; every control allowed; the seed's fields kept."""
    graph: Any = hosted_graph(monkeypatch)
    config = {"configurable": {"thread_id": "inbox-fields"}}
    first = graph.invoke(
        {"messages": [{"role": "user", "content": "what's the weather in sf?"}]}, config
    )
    value = first["__interrupt__"][0].value
    assert is_human_interrupt(value) and "action_requests" not in value
    assert value["action_request"] == {"action": "weather_search", "args": {"city": "sf"}}
    assert value["config"] == dict.fromkeys(
        ("allow_accept", "allow_edit", "allow_respond", "allow_ignore"), True
    )
    assert "Is this correct?" in value["description"]
    assert value["question"] == "Is this correct?" and value["tool_call"]["id"]


@pytest.mark.parametrize(
    ("resume", "words", "field"),
    [
        (
            [{"type": "edit", "args": {"action": "weather_search", "args": {"town": "Oslo"}}}],
            "town",
            "town",
        ),
        (
            {
                "decisions": [
                    {
                        "type": "edit",
                        "edited_action": {"name": "weather_search", "args": {"city": " "}},
                    }
                ]
            },
            "blank",
            "city",
        ),
        (
            [{"type": "edit", "args": {"action": "post_message", "args": {"city": "Oslo"}}}],
            "cannot change the tool",
            None,
        ),
        ([{"type": "response", "args": "use\x00Oslo"}], "NUL", None),
        (
            {
                "decisions": [
                    {
                        "type": "edit",
                        "edited_action": {"name": "weather_search", "args": {"city": "a\x00"}},
                    }
                ]
            },
            "NUL",
            "city",
        ),
        ({"decisions": [{"type": "approve"}, {"type": "approve"}]}, "one call", None),
        ([{"type": "maybe", "args": None}], "unknown response type", None),
        ({"decisions": []}, "non-empty", None),
    ],
)
async def test_invalid_answers_in_any_vocabulary_re_ask_with_the_error(
    monkeypatch: pytest.MonkeyPatch, resume: Any, words: str, field: str | None
) -> None:
    """Agent Inbox's and the middleware's answers are checked as strictly as the seed's: what
    cannot be applied runs nothing and the same review is asked again, saying why."""
    graph: Any = hosted_graph(monkeypatch)
    config = {"configurable": {"thread_id": f"invalid-{words}"}}
    first = await graph.ainvoke(
        {"messages": [{"role": "user", "content": "what's the weather in sf?"}]}, config
    )
    [pending] = first["__interrupt__"]
    updates = [
        u async for u in graph.astream(Command(resume=resume), config, stream_mode="updates")
    ]
    assert [next(iter(u)) for u in updates] == ["__interrupt__"]
    [again] = updates[-1]["__interrupt__"]
    assert again.value["tool_call"] == pending.value["tool_call"]
    assert words in again.value["error"]
    assert again.value.get("error_argument") == field
    assert words in again.value["description"]  # Agent Inbox shows why, too


async def _shout(text: str) -> str:
    return text.upper()


def _async_only_graph() -> Any:
    """A model with only ``ainvoke`` (the scripted one) and a tool with only a coroutine (as
    MCP tools are): the sync faces must run them to completion, not fail."""
    shout = StructuredTool.from_function(coroutine=_shout, name="shout", description="Shout.")
    registry = ToolRegistry([ToolEntry(weather_search), ToolEntry(shout)])
    model = ScriptedModel([tool_calls(("shout", {"text": "hi"})), AIMessage("done")])
    return build_graph(model, registry, InMemorySaver())


def _run_async_only_graph_sync(graph: Any) -> None:
    config = {"configurable": {"thread_id": "async-only"}}
    first = graph.invoke({"messages": [{"role": "user", "content": "shout hi"}]}, config)
    assert first["__interrupt__"][0].value["tool_call"]["args"] == {"text": "hi"}
    done = graph.invoke(Command(resume=[{"type": "accept", "args": None}]), config)
    assert [m.content for m in done["messages"][-2:]] == ["HI", "done"]


def test_sync_runs_drive_an_async_only_model_and_tool() -> None:
    _run_async_only_graph_sync(_async_only_graph())


async def test_sync_runs_work_when_called_from_inside_an_event_loop() -> None:
    """``graph.invoke`` called from async code: the coroutines run on a worker thread (this
    thread's loop is busy waiting for the call), with LangGraph's context carried over."""
    _run_async_only_graph_sync(_async_only_graph())


async def test_sync_runs_with_claude_use_its_own_invoke() -> None:
    """Claude through langchain-anthropic, driven sync (``graph.invoke`` on a worker thread, so
    this loop keeps serving the loopback Anthropic stub): the model's sync ``invoke`` answers,
    and every proposed call gets its one result."""
    registry = build_registry()
    async with running_anthropic_stub() as stub:
        settings = AgentSettings(
            anthropic_api_key=stub.api_key,
            anthropic_base_url=stub.url,
            anthropic_model="claude-sonnet-4-6",
            model_timeout_seconds=20,
        )
        graph = build_graph(build_model(settings, registry.tools), registry, InMemorySaver())
        [call] = stub.reply_tool_calls([("weather_search", {"city": "sf"})], text="Checking.")
        stub.reply_text("Sunny.")
        config = {"configurable": {"thread_id": "sync-claude"}}
        question = {"messages": [{"role": "user", "content": "what's the weather in sf?"}]}
        first = await asyncio.to_thread(graph.invoke, question, config)
        assert first["__interrupt__"][0].value["tool_call"]["id"] == call.id
        resume = Command(resume={"decisions": [{"type": "approve"}]})
        done = await asyncio.to_thread(graph.invoke, resume, config)
        assert done["messages"][-1].content == "Sunny."
        assert done["messages"][-2].content == demo_weather("sf")
        assert [r.status for r in stub.recorded] == [200, 200]
