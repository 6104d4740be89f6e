"""The real Claude path: ``build_model`` -> langchain-anthropic -> anthropic SDK -> HTTP, against
the loopback Anthropic stub, which refuses a conversation where a ``tool_use`` lacks its
``tool_result``. So a passing run proves each proposed call got exactly one answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from graph.tools.registry import ToolEntry, ToolRegistry, build_registry
from graph.tools.weather import demo_weather
from tests.conftest import AgentFactory
from tests.support.anthropic_stub import AnthropicStub, running_anthropic_stub
from tests.support.graph_helpers import (
    CLAUDE_MODEL,
    ToolLog,
    by_call_id,
    claude_model,
    exploding_tool,
    outcome,
)


@pytest.fixture
async def stub() -> AsyncIterator[AnthropicStub]:
    async with running_anthropic_stub() as running:
        yield running


def blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def tool_results(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tool_result blocks of the request's last user message, by tool_use_id."""
    last = request["messages"][-1]
    assert last["role"] == "user"
    return {b["tool_use_id"]: b for b in blocks(last) if b["type"] == "tool_result"}


def result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


def tool_uses(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in blocks(message) if b["type"] == "tool_use"]


def rejected(stub: AnthropicStub) -> list[int]:
    return [r.status for r in stub.recorded if r.status >= 400]


async def test_claude_proposes_a_call_that_runs_after_approval(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str
) -> None:
    registry = build_registry()
    [call] = stub.reply_tool_calls([("weather_search", {"city": "sf"})], text="Let me check.")
    stub.reply_text("It's sunny in San Francisco.")
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        started = outcome(await service.start_turn(thread_id, "what's the weather in sf?"))
        [review] = started.pending
        assert review.tool_call_id == call.id
        assert review.args == {"city": "sf"}
        assert started.reply == "Let me check."

        first = stub.requests[0]
        assert first["model"] == CLAUDE_MODEL
        assert {t["name"] for t in first["tools"]} == set(registry.names)
        weather_schema = next(t for t in first["tools"] if t["name"] == "weather_search")
        assert weather_schema["input_schema"]["required"] == ["city"]
        assert first["messages"][-1]["role"] == "user"
        assert "what's the weather in sf?" in str(first["messages"][-1]["content"])

        done = outcome(await service.answer(thread_id, review.interrupt_id, {"action": "continue"}))
        assert done.reply == "It's sunny in San Francisco."
        assert rejected(stub) == []
        second = stub.requests[1]
        assert {t["name"] for t in second["tools"]} == set(registry.names)
        [assistant_use] = tool_uses(second["messages"][-2])
        assert (assistant_use["id"], assistant_use["input"]) == (call.id, {"city": "sf"})
        results = tool_results(second)
        assert set(results) == {call.id}
        assert result_text(results[call.id]) == demo_weather("sf")
        assert not results[call.id].get("is_error", False)


async def test_claude_sees_the_edited_arguments(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str
) -> None:
    registry = build_registry()
    [call] = stub.reply_tool_calls([("weather_search", {"city": "sf"})])
    stub.reply_text("Done.")
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        [review] = outcome(await service.start_turn(thread_id, "weather in sf?")).pending
        new_args = {"city": "San Francisco, USA"}
        outcome(
            await service.answer(
                thread_id, review.interrupt_id, {"action": "update", "data": new_args}
            )
        )
        assert rejected(stub) == []
        second = stub.requests[1]
        # The history Claude gets shows the call as edited, under the same tool_use id.
        [assistant_use] = tool_uses(second["messages"][-2])
        assert assistant_use["id"] == call.id
        assert assistant_use["input"] == new_args
        results = tool_results(second)
        assert result_text(results[call.id]) == demo_weather("San Francisco, USA")


async def test_claude_gets_feedback_as_the_tool_result_and_proposes_again(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str
) -> None:
    registry = build_registry()
    feedback = "User requested changes: use <city, country> format for location"
    [call] = stub.reply_tool_calls([("weather_search", {"city": "sf"})])
    [retry] = stub.reply_tool_calls([("weather_search", {"city": "San Francisco, USA"})])
    stub.reply_text("Sunny in San Francisco, USA.")
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        [review] = outcome(await service.start_turn(thread_id, "weather in sf?")).pending
        again = outcome(
            await service.answer(
                thread_id, review.interrupt_id, {"action": "feedback", "data": feedback}
            )
        )
        [second_review] = again.pending
        assert second_review.tool_call_id == retry.id
        assert second_review.args == {"city": "San Francisco, USA"}

        results = tool_results(stub.requests[1])
        assert set(results) == {call.id}
        assert feedback in result_text(results[call.id])

        done = outcome(
            await service.answer(thread_id, second_review.interrupt_id, {"action": "continue"})
        )
        assert done.reply == "Sunny in San Francisco, USA."
        assert rejected(stub) == []
        third = stub.requests[2]
        # The whole history is valid for Claude: both calls answered, in order.
        uses = [
            u["id"] for m in third["messages"] if m["role"] == "assistant" for u in tool_uses(m)
        ]
        assert uses == [call.id, retry.id]
        assert set(tool_results(third)) == {retry.id}


@pytest.mark.parametrize("order", ["approve_first", "feedback_first"])
async def test_claude_parallel_calls_each_get_a_result(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str, order: str
) -> None:
    registry = build_registry()
    paris, oslo = stub.reply_tool_calls(
        [("weather_search", {"city": "Paris"}), ("weather_search", {"city": "Oslo"})]
    )
    stub.reply_text("Paris is fine; skipped Oslo.")
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        started = outcome(await service.start_turn(thread_id, "weather in Paris and Oslo"))
        reviews = by_call_id(started.pending)
        assert set(reviews) == {paris.id, oslo.id}
        answers: list[tuple[str, dict[str, Any]]] = [
            (paris.id, {"action": "continue"}),
            (oslo.id, {"action": "feedback", "data": "not Oslo"}),
        ]
        if order == "feedback_first":
            answers.reverse()
        halfway = outcome(
            await service.answer(thread_id, reviews[answers[0][0]].interrupt_id, answers[0][1])
        )
        assert len(halfway.pending) == 1
        assert len(stub.requests) == 1  # Claude is not asked until both are answered
        done = outcome(
            await service.answer(thread_id, reviews[answers[1][0]].interrupt_id, answers[1][1])
        )
        assert done.reply == "Paris is fine; skipped Oslo."
        assert rejected(stub) == []
        assert len(stub.requests) == 2
        results = tool_results(stub.requests[1])
        assert set(results) == {paris.id, oslo.id}
        assert result_text(results[paris.id]) == demo_weather("Paris")
        assert "not Oslo" in result_text(results[oslo.id])


async def test_claude_parallel_updates_both_reach_the_request(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str
) -> None:
    registry = build_registry()
    first, second = stub.reply_tool_calls(
        [("weather_search", {"city": "sf"}), ("weather_search", {"city": "nyc"})]
    )
    stub.reply_text("Done.")
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        reviews = by_call_id(outcome(await service.start_turn(thread_id, "sf and nyc")).pending)
        for call_id, city in ((second.id, "New York, USA"), (first.id, "San Francisco, USA")):
            outcome(
                await service.answer(
                    thread_id,
                    reviews[call_id].interrupt_id,
                    {"action": "update", "data": {"city": city}},
                )
            )
        assert rejected(stub) == []
        request = stub.requests[1]
        uses = {u["id"]: u["input"] for u in tool_uses(request["messages"][-2])}
        assert uses == {
            first.id: {"city": "San Francisco, USA"},
            second.id: {"city": "New York, USA"},
        }
        results = tool_results(request)
        assert result_text(results[first.id]) == demo_weather("San Francisco, USA")
        assert result_text(results[second.id]) == demo_weather("New York, USA")


async def test_claude_sees_a_failing_tool_as_an_error_result(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str
) -> None:
    log = ToolLog()
    registry = ToolRegistry([ToolEntry(exploding_tool(log))])
    [call] = stub.reply_tool_calls([("explode", {"target": "prod"})])
    stub.reply_text("That failed.")
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        [review] = outcome(await service.start_turn(thread_id, "explode prod")).pending
        done = outcome(await service.answer(thread_id, review.interrupt_id, {"action": "continue"}))
        assert [r.status for r in done.tool_results] == ["error"]
        assert done.reply == "That failed."
        assert rejected(stub) == []
        result = tool_results(stub.requests[1])[call.id]
        assert result.get("is_error") is True
        assert "boom at prod" in result_text(result)
        assert log.runs == [("explode", {"target": "prod"})]
