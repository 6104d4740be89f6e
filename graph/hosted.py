"""The graph for LangGraph Server (`langgraph.json`), which supplies its own checkpointer.

Clients then use the seed's own calls: start a run with a user message, read the interrupt under
``__interrupt__``, and resume with ``Command(resume={"action": ...})``. The Slack tools need a
workspace client in the run context, which only the bot provides; the other tools work as is.
"""

from __future__ import annotations

from graph.agent import AgentGraph, build_graph
from graph.config import AgentSettings
from graph.model import build_model
from graph.tools.registry import build_registry


def make_graph() -> AgentGraph:
    settings = AgentSettings.from_env()
    registry = build_registry(settings.tool_modules, settings.auto_approve)
    return build_graph(build_model(settings, registry.tools), registry)
