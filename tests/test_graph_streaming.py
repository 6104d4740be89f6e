"""The model's text leaves a run as it is written (``graph.streaming``): with Claude (the real
langchain-anthropic -> anthropic SDK -> HTTP path, against the loopback Anthropic stub's SSE
stream) and with the offline planner. The pieces joined are the message's text, its end says
whether it ends the turn, tool calls still come whole, and without a listener nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from graph import AgentContext, ToolResult
from graph.offline import OFFLINE_HELP
from graph.tools.registry import build_registry
from tests.conftest import AgentFactory
from tests.support.anthropic_stub import AnthropicStub, running_anthropic_stub
from tests.support.graph_helpers import claude_model, outcome


class Listener:
    def __init__(self, *, fail: bool = False) -> None:
        self.parts: list[str] = []
        self.ends: list[bool] = []
        self.results: list[str] = []
        self.fail = fail

    async def text(self, delta: str) -> None:
        if self.fail:
            raise RuntimeError("the listener broke")
        self.parts.append(delta)

    async def message_end(self, *, final: bool) -> None:
        self.ends.append(final)

    async def tool_result(self, result: ToolResult) -> None:
        self.results.append(result.tool_call_id)
        self.parts.append(f"<result {result.tool_name}>")


@pytest.fixture
async def stub() -> AsyncIterator[AnthropicStub]:
    async with running_anthropic_stub() as running:
        yield running


async def test_claude_streams_its_reply_and_its_calls_come_whole(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str
) -> None:
    registry = build_registry()
    stub.reply_tool_calls([("weather_search", {"city": "sf"})], text="Let me check the weather.")
    stub.reply_text("It's sunny in San Francisco, and warm enough for a walk by the bay.")
    listener = Listener()
    context = AgentContext(reply=listener)
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        started = outcome(await service.start_turn(thread_id, "weather in sf?", context=context))
        [review] = started.pending
        assert review.args == {"city": "sf"}  # the streamed tool_use, accumulated whole
        assert "".join(listener.parts) == started.reply == "Let me check the weather."
        assert listener.ends == [False]  # it proposed a call: not the turn's end
        assert stub.requests[0].get("stream") is True
        listener.parts.clear()
        done = outcome(
            await service.answer(
                thread_id, review.interrupt_id, {"action": "continue"}, context=context
            )
        )
        # the call's result is told before the model's first word about it
        result, *words = listener.parts
        assert result == "<result weather_search>"
        assert listener.results == [review.tool_call_id]
        assert [r.tool_call_id for r in done.tool_results] == listener.results
        assert len(words) > 1  # arrived in pieces, as written
        assert "".join(words) == done.reply
        assert done.reply and done.reply.startswith("It's sunny")
        assert listener.ends == [False, True]


async def test_without_a_listener_claude_is_asked_whole(
    agent_factory: AgentFactory, stub: AnthropicStub, thread_id: str
) -> None:
    registry = build_registry()
    stub.reply_text("Hello.")
    async with agent_factory(model=claude_model(stub, registry), registry=registry) as service:
        assert outcome(await service.start_turn(thread_id, "hi")).reply == "Hello."
    assert not stub.last_request.get("stream")


async def test_the_offline_planner_streams_word_by_word(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    listener = Listener()
    async with agent_factory() as service:
        said = outcome(
            await service.start_turn(thread_id, "hello", context=AgentContext(reply=listener))
        )
    assert said.reply == OFFLINE_HELP == "".join(listener.parts)
    assert len(listener.parts) > 10 and listener.ends == [True]


async def test_a_broken_listener_never_breaks_the_run(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    context = AgentContext(reply=Listener(fail=True))
    async with agent_factory() as service:
        said = outcome(await service.start_turn(thread_id, "hello", context=context))
    assert said.reply == OFFLINE_HELP
