"""The agent's stand-ins: a model that answers instantly and a tool that does nothing.

The model is stateless, so one instance serves any number of threads and turns: after a person's
message it proposes one ``bench_noop`` call; after the tool's result it answers in words.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from graph.tools.registry import ToolEntry, ToolRegistry

TOOL_NAME = "bench_noop"
_ids = itertools.count(1)


@tool
def bench_noop(note: str) -> str:
    """Do nothing (a benchmark tool with no side effect)."""
    return "ok"


class InstantModel:
    """Proposes one no-op tool call after a human message, else answers "done"."""

    def bind_tools(self, tools: Sequence[Any]) -> InstantModel:
        return self

    async def ainvoke(
        self, input: Sequence[BaseMessage], config: RunnableConfig | None = None
    ) -> AIMessage:
        if input and isinstance(input[-1], HumanMessage):
            return AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": TOOL_NAME,
                        "args": {"note": "bench"},
                        "id": f"toolu_bench_{next(_ids)}",
                        "type": "tool_call",
                    }
                ],
            )
        return AIMessage(content="done")


def bench_registry() -> ToolRegistry:
    """Only the no-op tool, reviewed (the bot's built-in Slack tools are not offered)."""
    return ToolRegistry([ToolEntry(bench_noop)])
