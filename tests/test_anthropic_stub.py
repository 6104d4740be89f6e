"""The Anthropic stub must be faithful enough that the *real* SDK stack accepts it.

These tests drive ``anthropic.AsyncAnthropic`` and ``langchain_anthropic.ChatAnthropic``
over loopback against the stub. If an SDK upgrade changes what it sends or expects,
these fail first, rather than the agent tests that merely rely on the stub.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import tool

from tests.support.anthropic_stub import (
    AnthropicStub,
    ErrorReply,
    TextReply,
    ToolCall,
    ToolCallsReply,
    running_anthropic_stub,
)

MODEL = "claude-sonnet-4-6"  # any name works; 4-5 would trigger SDK deprecation warnings


@tool
def lookup_user(email: str) -> str:
    """Look up a Slack user by email address."""
    return f"U123 ({email})"


@tool
def post_message(channel: str, text: str) -> str:
    """Post a message to a Slack channel."""
    return "ok"


_open_clients: list[anthropic.AsyncAnthropic] = []


@pytest.fixture
async def stub() -> AsyncIterator[AnthropicStub]:
    async with running_anthropic_stub() as s:
        try:
            yield s
        finally:
            while _open_clients:
                await _open_clients.pop().close()


def sdk(stub: AnthropicStub, **kwargs: Any) -> anthropic.AsyncAnthropic:
    """An SDK client aimed at the stub; closed by the ``stub`` fixture's teardown."""
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", stub.api_key)
    client = anthropic.AsyncAnthropic(base_url=stub.url, **kwargs)
    _open_clients.append(client)
    return client


def chat(stub: AnthropicStub, **kwargs: Any) -> ChatAnthropic:
    kwargs.setdefault("max_retries", 0)
    # ChatAnthropic's pydantic aliases (model, api_key: SecretStr) confuse plain mypy.
    return ChatAnthropic(model=MODEL, base_url=stub.url, api_key=stub.api_key, **kwargs)  # type: ignore[call-arg, arg-type]


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


# ---------------------------------------------------------------- raw SDK


async def test_sdk_receives_tool_use_message(stub: AnthropicStub) -> None:
    [call] = stub.reply_tool_calls([("get_weather", {"city": "Oslo"})], text="Checking.")
    client = sdk(stub)
    msg = await client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    assert msg.id.startswith("msg_01")
    assert msg.role == "assistant"
    assert msg.model == MODEL
    assert msg.stop_reason == "tool_use"
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens > 0
    text, tool_use = msg.content
    assert text.type == "text"
    assert text.text == "Checking."
    assert tool_use.type == "tool_use"
    assert (tool_use.id, tool_use.name, tool_use.input) == (
        call.id,
        "get_weather",
        {"city": "Oslo"},
    )
    assert call.id.startswith("toolu_01")

    recorded = stub.recorded[-1]
    assert recorded.path == "/v1/messages"
    assert recorded.api_key == "test-key"  # SDK 2.x sends it as `Authorization: Bearer`
    assert recorded.headers["anthropic-version"]
    assert stub.requests == [recorded.body]
    assert stub.last_request["tools"][0]["name"] == "get_weather"


async def test_sdk_stream_helper_accumulates_text_and_tool_json(stub: AnthropicStub) -> None:
    """``messages.stream`` rebuilds the final message from deltas: a strict shape check."""
    stub.reply_tool_calls(
        [ToolCall("get_weather", {"city": "Reykjavík", "days": [1, 2, 3]}, id="toolu_01fixed")],
        text="Let me look that up for you, one moment.",
    )
    client = sdk(stub)
    async with client.messages.stream(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        event_types = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert event_types[0] == "message_start"
    assert event_types[-1] == "message_stop"
    assert "content_block_delta" in event_types
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "text"
    assert final.content[0].text == "Let me look that up for you, one moment."
    assert final.content[1].type == "tool_use"
    assert final.content[1].id == "toolu_01fixed"
    assert final.content[1].input == {"city": "Reykjavík", "days": [1, 2, 3]}
    assert stub.last_request["stream"] is True


async def test_count_tokens(stub: AnthropicStub) -> None:
    count = await sdk(stub).messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "hello " * 100}]
    )
    assert count.input_tokens > 10
    assert stub.requests == []  # count_tokens is recorded, but not as a messages request
    assert stub.recorded[-1].path == "/v1/messages/count_tokens"


async def test_bad_api_key_is_authentication_error(stub: AnthropicStub) -> None:
    stub.reply_text("never served")
    client = sdk(stub, api_key="wrong")
    with pytest.raises(anthropic.AuthenticationError) as exc_info:
        await client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert exc_info.value.status_code == 401
    assert exc_info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": exc_info.value.request_id,
    }
    assert stub.pending == 1  # a rejected request does not consume the script
    assert stub.recorded[-1].status == 401


async def test_bad_api_key_via_chat_anthropic(stub: AnthropicStub) -> None:
    llm = ChatAnthropic(model=MODEL, base_url=stub.url, api_key="wrong", max_retries=0)  # type: ignore[call-arg, arg-type]
    with pytest.raises(anthropic.AuthenticationError):
        await llm.ainvoke("hi")


async def test_missing_headers_and_unknown_paths_use_error_shape(stub: AnthropicStub) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{stub.url}/v1/messages", json={}) as resp:
            assert resp.status == 401
            body = await resp.json()
            assert body["type"] == "error"
            assert body["error"]["type"] == "authentication_error"
        async with http.post(
            f"{stub.url}/v1/messages", json={}, headers={"x-api-key": "test-key"}
        ) as resp:
            assert resp.status == 400
            assert "anthropic-version" in (await resp.json())["error"]["message"]
        for method, path in [("GET", "/v1/models/nope"), ("GET", "/v1/messages")]:
            async with http.request(method, f"{stub.url}{path}") as resp:
                assert resp.status == 404
                assert (await resp.json())["error"]["type"] == "not_found_error"


async def test_empty_queue_fails_loudly_without_retries(stub: AnthropicStub) -> None:
    client = sdk(stub, max_retries=2)  # x-should-retry: false must stop the retry loop
    with pytest.raises(anthropic.InternalServerError, match="no scripted reply queued"):
        await client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert len(stub.requests) == 1


async def test_scripted_error_reply(stub: AnthropicStub) -> None:
    stub.extend([ErrorReply(529, "overloaded_error", "Overloaded"), TextReply("recovered")])
    client = sdk(stub)
    with pytest.raises(anthropic.APIStatusError) as exc_info:
        await client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert exc_info.value.status_code == 529
    msg = await client.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "recovered"


async def test_reply_with_callable_sees_request_and_reset(stub: AnthropicStub) -> None:
    def echo(request: dict[str, Any]) -> str:
        return f"echo: {request['messages'][-1]['content']}"

    async def async_calls(request: dict[str, Any]) -> ToolCallsReply:
        await asyncio.sleep(0)
        assert stub.last_request is request  # recorded before the reply is computed
        return ToolCallsReply((ToolCall("get_weather", {"city": request["system"]}),))

    stub.reply_with(echo)
    stub.reply_with(async_calls)
    client = sdk(stub)
    msg = await client.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "ping"}]
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "echo: ping"
    msg = await client.messages.create(
        model=MODEL, max_tokens=10, system="Bergen", messages=[{"role": "user", "content": "x"}]
    )
    assert msg.content[0].type == "tool_use"
    assert msg.content[0].input == {"city": "Bergen"}

    stub.reply_text("left over")
    stub.reset()
    assert (stub.pending, stub.requests, stub.recorded) == (0, [], [])


async def test_failing_callable_is_reported(stub: AnthropicStub) -> None:
    def boom(request: dict[str, Any]) -> str:
        raise RuntimeError("kaboom")

    stub.reply_with(boom)
    with pytest.raises(anthropic.InternalServerError, match="kaboom"):
        await sdk(stub).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(stub.errors[0], RuntimeError)


async def test_missing_tool_result_is_bad_request_via_sdk(stub: AnthropicStub) -> None:
    stub.reply_text("never served")
    with pytest.raises(anthropic.BadRequestError) as exc_info:
        await sdk(stub).messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_01a", "name": "x", "input": {}},
                        {"type": "tool_use", "id": "toolu_01b", "name": "x", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_01a", "content": "1"}
                    ],
                },
            ],
        )
    assert exc_info.value.status_code == 400
    message = exc_info.value.message
    assert "messages.1: `tool_use` ids were found without `tool_result` blocks" in message
    assert "immediately after: toolu_01b." in message
    assert stub.pending == 1


async def test_unexpected_tool_result_is_bad_request(stub: AnthropicStub) -> None:
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        await sdk(stub).messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_01z", "content": "1"}
                    ],
                }
            ],
        )


# ---------------------------------------------------------------- ChatAnthropic


async def test_chat_anthropic_bind_tools_and_tool_message_round_trip(stub: AnthropicStub) -> None:
    [call] = stub.reply_tool_calls([("lookup_user", {"email": "ada@example.com"})])
    stub.reply_text("Ada is U123.")
    llm = chat(stub).bind_tools([lookup_user])

    history: list[BaseMessage] = [HumanMessage("Who is ada@example.com?")]
    first = await llm.ainvoke(history)
    assert isinstance(first, AIMessage)
    assert first.tool_calls == [
        {
            "name": "lookup_user",
            "args": {"email": "ada@example.com"},
            "id": call.id,
            "type": "tool_call",
        }
    ]
    assert first.response_metadata["stop_reason"] == "tool_use"

    tool_output = lookup_user.invoke(first.tool_calls[0]["args"])
    history += [first, ToolMessage(tool_output, tool_call_id=call.id)]
    second = await llm.ainvoke(history)
    assert second.content == "Ada is U123."
    assert second.tool_calls == []

    request = stub.requests[1]
    [tool_schema] = request["tools"]
    assert tool_schema["name"] == "lookup_user"
    assert tool_schema["description"] == "Look up a Slack user by email address."
    assert tool_schema["input_schema"]["properties"]["email"]["type"] == "string"
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    [result_block] = [
        b for b in request["messages"][2]["content"] if b.get("type") == "tool_result"
    ]
    assert result_block["tool_use_id"] == call.id
    assert "U123" in json.dumps(result_block["content"])


async def test_chat_anthropic_parallel_tool_calls(stub: AnthropicStub) -> None:
    calls = stub.reply_tool_calls(
        [
            ("lookup_user", {"email": "ada@example.com"}),
            ("post_message", {"channel": "#ops", "text": "deploying"}),
        ]
    )
    stub.reply_text("Both done.")
    llm = chat(stub).bind_tools([lookup_user, post_message])

    first = await llm.ainvoke("Find Ada and tell #ops we deploy.")
    assert isinstance(first, AIMessage)
    assert [(tc["name"], tc["id"]) for tc in first.tool_calls] == [
        ("lookup_user", calls[0].id),
        ("post_message", calls[1].id),
    ]
    assert first.tool_calls[1]["args"] == {"channel": "#ops", "text": "deploying"}

    results = [ToolMessage("done", tool_call_id=tc["id"]) for tc in first.tool_calls if tc["id"]]
    second = await llm.ainvoke([HumanMessage("go"), first, *results])
    assert second.content == "Both done."
    answered = [
        b["tool_use_id"]
        for b in stub.requests[1]["messages"][-1]["content"]
        if b.get("type") == "tool_result"
    ]
    assert answered == [c.id for c in calls]


async def test_chat_anthropic_astream_yields_tool_call(stub: AnthropicStub) -> None:
    [call] = stub.reply_tool_calls(
        [("post_message", {"channel": "#ops", "text": "a fairly long message to split"})],
        text="Posting now.",
    )
    llm = chat(stub, streaming=True).bind_tools([post_message])

    chunks = [chunk async for chunk in llm.astream("Tell #ops.")]
    assert len(chunks) > 3  # really streamed, not one blob
    merged = chunks[0]
    assert isinstance(merged, AIMessageChunk)
    for chunk in chunks[1:]:
        assert isinstance(chunk, AIMessageChunk)
        merged += chunk
    assert merged.tool_calls == [
        {
            "name": "post_message",
            "args": {"channel": "#ops", "text": "a fairly long message to split"},
            "id": call.id,
            "type": "tool_call",
        }
    ]
    assert merged.response_metadata["stop_reason"] == "tool_use"
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["output_tokens"] > 0
    assert stub.last_request["stream"] is True


async def test_chat_anthropic_streaming_text(stub: AnthropicStub) -> None:
    stub.reply_text("Hello from the stub, streamed in pieces.")
    llm = chat(stub, streaming=True)
    text = "".join([str(chunk.content) async for chunk in llm.astream("hi")])
    assert text == "Hello from the stub, streamed in pieces."
    stub.reply_text("Same via ainvoke with streaming=True.")
    result = await llm.ainvoke("again")
    assert result.content == "Same via ainvoke with streaming=True."


async def test_chat_anthropic_missing_tool_result_raises_bad_request(stub: AnthropicStub) -> None:
    """The classic agent bug: resuming after a tool call without answering it."""
    stub.reply_text("never served")
    llm = chat(stub).bind_tools([lookup_user])
    dangling = AIMessage(
        content="",
        tool_calls=[{"name": "lookup_user", "args": {"email": "x@y.z"}, "id": "toolu_01dangling"}],
    )
    with pytest.raises(anthropic.BadRequestError, match="toolu_01dangling"):
        await llm.ainvoke([HumanMessage("hi"), dangling, HumanMessage("never mind")])
    assert stub.pending == 1
    assert stub.recorded[-1].status == 400


async def test_chat_anthropic_beta_route(stub: AnthropicStub) -> None:
    """With ``betas`` set, ChatAnthropic posts to ``/v1/messages?beta=true``."""
    stub.reply_text("beta ok")
    result = await chat(stub, betas=["context-1m-2025-08-07"]).ainvoke("hi")
    assert result.content == "beta ok"
    assert stub.recorded[-1].path == "/v1/messages"
    assert "context-1m-2025-08-07" in stub.recorded[-1].headers["anthropic-beta"]


async def test_sync_clients_work_from_a_thread(stub: AnthropicStub) -> None:
    """The server shares the test's loop, so blocking clients must run off-loop."""
    stub.reply_text("sync sdk")
    stub.reply_text("sync langchain")
    with anthropic.Anthropic(base_url=stub.url, api_key=stub.api_key, max_retries=0) as client:
        msg = await asyncio.to_thread(
            lambda: client.messages.create(
                model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "sync sdk"
    result = await asyncio.to_thread(chat(stub).invoke, "hi")
    assert result.content == "sync langchain"


async def test_a_tool_name_the_real_api_refuses_is_refused(stub: AnthropicStub) -> None:
    """Claude's tool names match ``^[a-zA-Z0-9_-]{1,64}$``: no dot (an MCP server's tools are
    offered as ``server__tool`` for this reason), at most 64 characters."""
    client = sdk(stub)
    for name in ("github.create_issue", "x" * 65, ""):
        with pytest.raises(anthropic.BadRequestError, match=r"tools\.0\.custom\.name"):
            await client.messages.create(
                model=MODEL,
                max_tokens=10,
                tools=[{**WEATHER_TOOL, "name": name}],  # type: ignore[list-item]
                messages=[{"role": "user", "content": "hi"}],
            )
    assert [r.status for r in stub.recorded] == [400, 400, 400]
