"""The agent's checkpointed state: the conversation, plus the decisions people made on it."""

from __future__ import annotations

from typing import Annotated, NotRequired, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from graph.types import DecisionRecord, ToolCallData


def merge_decisions(
    current: dict[str, DecisionRecord] | None, new: dict[str, DecisionRecord] | None
) -> dict[str, DecisionRecord]:
    """Merge by tool call id, so parallel reviews of one message never overwrite each other."""
    return {**(current or {}), **(new or {})}


class AgentState(TypedDict):
    """Messages use LangGraph's id-aware reducer; decisions are keyed by tool call id."""

    messages: Annotated[list[AnyMessage], add_messages]
    decisions: Annotated[dict[str, DecisionRecord], merge_decisions]


class ReviewTask(TypedDict):
    """What one `human_review_node` task receives through `Send`: a single tool call."""

    tool_call: ToolCallData
    calls_in_message: int
    requested_by: str | None
    requesters: NotRequired[list[str]]  # absent in tasks checkpointed before it existed
