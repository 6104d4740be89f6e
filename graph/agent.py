"""Graph assembly, top to bottom: the model answers, reviews fan out, approved tools run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.context import AgentContext
from graph.model import ChatModel
from graph.nodes import AgentNodes
from graph.state import AgentState, ReviewTask
from graph.tools.registry import ToolRegistry

AgentGraph = CompiledStateGraph[AgentState, AgentContext, Any, Any]


def both(sync: Callable[..., Any], run_async: Callable[..., Awaitable[Any]]) -> RunnableCallable:
    """A node (or router) with a sync and an async face, as LangGraph builds one for a plain
    function (``trace=False``: no run of its own in callbacks); with only the async face,
    ``graph.invoke`` fails with "No synchronous function provided".

    ``RunnableCallable`` lives in ``langgraph._internal`` (re-exported by the deprecated
    ``langgraph.utils.runnable``): it is what ``add_node`` itself wraps every function in, with
    config injection; langchain-core's public ``RunnableLambda`` would add a traced run of its
    own around each node."""
    return RunnableCallable(sync, run_async, name=getattr(run_async, "__name__", None), trace=False)


def build_graph(
    model: ChatModel,
    registry: ToolRegistry,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> AgentGraph:
    """Wire the seed's graph, with one review per tool call instead of one per message."""
    nodes = AgentNodes(model, registry)
    builder = StateGraph(AgentState, context_schema=AgentContext)
    builder.add_node("call_llm", both(nodes.call_llm_sync, nodes.call_llm))
    builder.add_node(
        "human_review_node",
        both(nodes.human_review_node_sync, nodes.human_review_node),
        input_schema=ReviewTask,
        destinations=("run_tool", "call_llm"),
    )
    builder.add_node("run_tool", both(nodes.run_tool_sync, nodes.run_tool))

    builder.add_edge(START, "call_llm")
    builder.add_conditional_edges(
        "call_llm",
        both(nodes.route_after_llm_sync, nodes.route_after_llm),
        ["human_review_node", "run_tool", END],
    )
    builder.add_edge("run_tool", "call_llm")
    return builder.compile(checkpointer=checkpointer, name="approval_agent")
