"""The agent: a LangGraph graph that asks a person before each consequential tool call.

The Slack side uses only what is exported here.
"""

from graph.config import AgentSettings
from graph.context import AgentContext, SlackWebAPI
from graph.runtime import open_agent
from graph.service import AgentService
from graph.types import (
    Decision,
    PastDecision,
    PendingReview,
    Refused,
    ReviewRequest,
    RunOutcome,
    ToolResult,
)

__all__ = [
    "AgentContext",
    "AgentService",
    "AgentSettings",
    "Decision",
    "PastDecision",
    "PendingReview",
    "Refused",
    "ReviewRequest",
    "RunOutcome",
    "SlackWebAPI",
    "ToolResult",
    "open_agent",
]
