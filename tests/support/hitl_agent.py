"""A stock LangChain v1 agent guarded by ``HumanInTheLoopMiddleware``, for LangGraph Server tests.

Nothing of this project's graph is in it: ``create_agent`` with the seed's weather tool, the
middleware as its documentation configures it (every decision allowed), and a chat model that
answers from a script keyed on the conversation (not on a call count, so a server that replays
or retries a step gets the same answer):

- after a user message it proposes ``weather_search`` for the city the offline planner reads
  in it (``what's the weather in sf?`` -> ``{"city": "sf"}``);
- after tool results it answers ``Done: <each result>``, so a test sees what ran (or that the
  middleware's rejection message reached the model instead).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from graph.offline import plan
from graph.tools.weather import weather_search

HITL_TOOL = "weather_search"


class ConversationScriptedChatModel(BaseChatModel):
    """A real ``BaseChatModel`` (sync and async through LangChain's own plumbing) whose reply
    is a pure function of the conversation it is shown."""

    @property
    def _llm_type(self) -> str:
        return "conversation-scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=reply_to(messages))])


def reply_to(messages: Sequence[BaseMessage]) -> AIMessage:
    """The script: propose the planner's calls for a user message, report tool results."""
    last = messages[-1] if messages else None
    if isinstance(last, ToolMessage):
        results = _trailing_tools(messages)
        return AIMessage(content="Done: " + " | ".join(str(m.content) for m in results))
    text = str(last.content) if isinstance(last, HumanMessage) else ""
    calls = plan(text)
    if not calls:
        return AIMessage(content="I only know the weather.")
    return AIMessage(
        content="",
        tool_calls=[
            {"name": name, "args": args, "id": _call_id(len(messages), name, args)}
            for name, args in calls
        ],
    )


def _trailing_tools(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    trailing: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        trailing.insert(0, message)
    return trailing


def _call_id(position: int, name: str, args: dict[str, Any]) -> str:
    digest = hashlib.sha256(f"{position}:{name}:{sorted(args.items())}".encode()).hexdigest()
    return f"call_{digest[:16]}"


def make_agent() -> Any:
    """The graph LangGraph Server hosts as ``hitl`` (it supplies the checkpointer)."""
    return create_agent(
        model=ConversationScriptedChatModel(),
        tools=[weather_search],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={HITL_TOOL: True})],
        name="hitl_agent",
    )
