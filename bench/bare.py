"""The reference point: the same resume with bare LangGraph and ``AsyncPostgresSaver``.

A minimal seed-shaped graph (model -> interrupt node -> tool node -> model) with the same instant
model and no-op tool, on the same database, in the same run: no service, no lease, no Slack.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt
from psycopg_pool import AsyncConnectionPool

from bench.fakes import InstantModel, bench_noop
from graph.db import CONNECTION_KWARGS, Pool


def build_bare_graph(saver: AsyncPostgresSaver) -> Any:
    model = InstantModel()
    tools = ToolNode([bench_noop])

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
    builder.add_node("run_tool", tools)
    builder.add_edge(START, "call_llm")
    builder.add_conditional_edges("call_llm", route, ["human_review", END])
    builder.add_edge("run_tool", "call_llm")
    return builder.compile(checkpointer=saver)


async def bare_resumes(database_url: str, samples: int) -> list[float]:
    """Seconds per resume-to-end, one fresh thread each, after a short warm-up."""
    pool: Pool = AsyncConnectionPool(
        database_url, min_size=1, max_size=4, kwargs=CONNECTION_KWARGS, open=False
    )
    async with pool:
        saver = AsyncPostgresSaver(pool)  # tables exist already: the bot migrated
        graph = build_bare_graph(saver)
        timings: list[float] = []
        for index in range(samples + 5):
            config = {"configurable": {"thread_id": f"bench-bare-{uuid.uuid4().hex}"}}
            await graph.ainvoke({"messages": [HumanMessage("please do it")]}, config)
            started = time.perf_counter()
            await graph.ainvoke(Command(resume={"action": "continue"}), config)
            if index >= 5:
                timings.append(time.perf_counter() - started)
        return timings
