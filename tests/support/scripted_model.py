"""A chat model that answers from a script, so graph tests know exactly what the model says."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

Reply = AIMessage | Callable[[list[BaseMessage]], AIMessage]
_ids = itertools.count(1)


def tool_calls(*calls: tuple[str, dict[str, Any]]) -> AIMessage:
    """An AI message proposing the given calls, with fresh tool call ids."""
    return AIMessage(
        content="",
        tool_calls=[
            {"name": name, "args": args, "id": f"toolu_scripted_{next(_ids)}", "type": "tool_call"}
            for name, args in calls
        ],
    )


class ScriptedModel:
    """Replies in order; records every conversation it was shown."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.seen: list[list[BaseMessage]] = []

    def bind_tools(self, tools: Sequence[Any]) -> ScriptedModel:
        return self

    async def ainvoke(
        self, input: Sequence[BaseMessage], config: RunnableConfig | None = None
    ) -> AIMessage:
        messages = list(input)
        self.seen.append(messages)
        if not self.replies:
            raise AssertionError("the scripted model was called more often than scripted")
        reply = self.replies.pop(0)
        return reply(messages) if callable(reply) else reply
