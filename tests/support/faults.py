"""Failures and holds the bot tests inject into the agent and its tools."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, tool

from graph import AgentService


class ModelDown(RuntimeError):
    """The model (or the agent) could not be reached."""


def model_down(seen: Any) -> AIMessage:
    """A scripted model's turn that fails: after the tools ran, the model went away."""
    raise ModelDown("the model went away after the tools ran")


def answer_fails_once(agent: AgentService) -> list[str]:
    """The agent's next ``answer`` fails before the call runs (the decision is given back);
    every later one works. The list returned holds one entry once it has failed."""
    answer = agent.answer
    failed: list[str] = []

    async def fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append("once")
            raise ModelDown("the agent could not be reached")
        return await answer(*args, **kwargs)

    agent.answer = fails_once  # type: ignore[method-assign]
    return failed


@dataclass
class HeldExport:
    """``slow_export``: a tool that runs until the test lets it finish (``release``);
    ``started`` is set once it runs."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tool(self) -> BaseTool:
        started, release = self.started, self.release

        @tool
        async def slow_export(table: str) -> str:
            """Export a table (a test tool that runs until the test lets it finish)."""
            started.set()
            await release.wait()
            return f"exported {table}"

        return slow_export
