"""The reference point: the same resume with bare LangGraph and ``AsyncPostgresSaver``.

A minimal seed-shaped graph (model -> interrupt node -> tool node -> model) with the same instant
model and no-op tool, on the same database, in the same run: no service, no lease, no Slack.
The upstream saver and a plain pool (no borrow check) are used on purpose.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt
from psycopg_pool import AsyncConnectionPool

from bench.fakes import InstantModel, bench_noop
from graph.db import CONNECTION_KWARGS, Pool


def build_bare_graph(saver: AsyncPostgresSaver) -> Any:
    model = InstantModel()

    async def call_llm(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def route(state: MessagesState) -> Literal["human_review", "__end__"]:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return "human_review"
        return "__end__"

    def human_review(state: MessagesState) -> Command[Literal["run_tool"]]:
        interrupt({"question": "Is this correct?"})
        return Command(goto="run_tool")

    builder = StateGraph(MessagesState)
    builder.add_node("call_llm", call_llm)
    builder.add_node("human_review", human_review)
    builder.add_node("run_tool", ToolNode([bench_noop]))
    builder.add_edge(START, "call_llm")
    builder.add_conditional_edges("call_llm", route, ["human_review", "__end__"])
    builder.add_edge("run_tool", "call_llm")
    return builder.compile(checkpointer=saver)


class BareResume:
    """Each sample: start a fresh thread to its interrupt (untimed), then time the resume."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph

    async def interrupted(self, text: str) -> RunnableConfig:
        """A fresh thread run to its interrupt: what a resume continues."""
        config: RunnableConfig = {"configurable": {"thread_id": f"bench-bare-{uuid.uuid4().hex}"}}
        await self.graph.ainvoke({"messages": [HumanMessage(text)]}, config)
        return config

    async def resume(self, config: RunnableConfig) -> None:
        await self.graph.ainvoke(Command(resume={"action": "continue"}), config)

    async def sample(self, text: str) -> float:
        config = await self.interrupted(text)
        started = time.perf_counter()
        await self.resume(config)
        return time.perf_counter() - started

    async def sustained(self, text: str, count: int, concurrency: int) -> float:
        """Resumes per second: ``count`` threads brought to their interrupt (untimed), then
        all resumed, ``concurrency`` at once, as the bot's sustained approvals are."""
        gate = asyncio.Semaphore(concurrency)

        async def prepared() -> RunnableConfig:
            async with gate:
                return await self.interrupted(text)

        async def resumed(config: RunnableConfig) -> None:
            async with gate:
                await self.resume(config)

        configs = await asyncio.gather(*(prepared() for _ in range(count)))
        started = time.perf_counter()
        await asyncio.gather(*(resumed(config) for config in configs))
        return count / (time.perf_counter() - started)


@asynccontextmanager
async def bare_langgraph(database_url: str, max_size: int = 4) -> AsyncIterator[BareResume]:
    """``max_size``: the pool's connections (for the sustained run, as many as the bot's agent
    pool has: ``DATABASE_POOL_SIZE``'s default, 20)."""
    pool: Pool = AsyncConnectionPool(
        database_url, min_size=1, max_size=max_size, kwargs=CONNECTION_KWARGS, open=False
    )
    async with pool:
        saver = AsyncPostgresSaver(pool)  # tables exist already: the bot migrated
        bare = BareResume(build_bare_graph(saver))
        for _ in range(5):
            await bare.sample("warm-up")
        yield bare
