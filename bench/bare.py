"""The reference point: the same resume with bare LangGraph and ``AsyncPostgresSaver``.

A minimal seed-shaped graph (model -> interrupt node -> tool node -> model) with the same instant
model and no-op tool, on the same database, in the same run: no service, no lease, no Slack.
The upstream saver and a plain pool (no borrow check) are used on purpose.
"""

from __future__ import annotations

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

    async def sample(self, text: str) -> float:
        config: RunnableConfig = {"configurable": {"thread_id": f"bench-bare-{uuid.uuid4().hex}"}}
        await self.graph.ainvoke({"messages": [HumanMessage(text)]}, config)
        started = time.perf_counter()
        await self.graph.ainvoke(Command(resume={"action": "continue"}), config)
        return time.perf_counter() - started


@asynccontextmanager
async def bare_langgraph(database_url: str) -> AsyncIterator[BareResume]:
    pool: Pool = AsyncConnectionPool(
        database_url, min_size=1, max_size=4, kwargs=CONNECTION_KWARGS, open=False
    )
    async with pool:
        saver = AsyncPostgresSaver(pool)  # tables exist already: the bot migrated
        bare = BareResume(build_bare_graph(saver))
        for _ in range(5):
            await bare.sample("warm-up")
        yield bare
