"""langgraph.json serves a graph that answers the seed's own client calls."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

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
