"""Graph assembly, top to bottom: the model answers, reviews fan out, approved tools run."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.context import AgentContext
from graph.model import ChatModel
from graph.nodes import AgentNodes
from graph.state import AgentState
from graph.tools.registry import ToolRegistry

AgentGraph = CompiledStateGraph[AgentState, AgentContext, Any, Any]


def build_graph(
    model: ChatModel,
    registry: ToolRegistry,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> AgentGraph:
    """Wire the seed's graph, with one review per tool call instead of one per message."""
    nodes = AgentNodes(model, registry)
    builder = StateGraph(AgentState, context_schema=AgentContext)
    builder.add_node("call_llm", nodes.call_llm)
    builder.add_node("human_review_node", nodes.human_review_node)  # type: ignore[arg-type]
    builder.add_node("run_tool", nodes.run_tool)

    builder.add_edge(START, "call_llm")
    builder.add_conditional_edges(
        "call_llm", nodes.route_after_llm, ["human_review_node", "run_tool", END]
    )
    builder.add_edge("run_tool", "call_llm")
    return builder.compile(checkpointer=checkpointer, name="approval_agent")
