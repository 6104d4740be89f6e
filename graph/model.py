"""Choosing the chat model: Claude when a key is configured, else the offline planner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from graph.config import AgentSettings
from graph.offline import OfflinePlanner


class ChatModel(Protocol):
    """A model with tools bound: it reads the conversation and answers with one AI message."""

    async def ainvoke(
        self, input: Sequence[BaseMessage], config: RunnableConfig | None = None
    ) -> Any: ...


def build_model(settings: AgentSettings, tools: Sequence[BaseTool]) -> ChatModel:
    """Claude through langchain-anthropic, pointed at ``ANTHROPIC_BASE_URL`` if one is set."""
    if not settings.anthropic_api_key:
        return OfflinePlanner(tools)
    from langchain_anthropic import ChatAnthropic

    options: dict[str, Any] = {
        "model": settings.anthropic_model,
        "api_key": settings.anthropic_api_key,
        "max_tokens": 4096,
        "max_retries": 2,
        "timeout": settings.model_timeout_seconds,
    }
    if settings.anthropic_base_url:
        options["base_url"] = settings.anthropic_base_url
    chat: Any = ChatAnthropic(**options)
    bound: ChatModel = chat.bind_tools(list(tools))
    return bound
