"""The agent: a LangGraph graph that asks a person before each consequential tool call.

The Slack side uses only what is exported here.
"""

from graph.config import AgentSettings
from graph.context import AgentContext, SlackWebAPI
from graph.decisions import (
    EXPIRY_ACTOR,
    Approve,
    DecisionKind,
    Edit,
    Expire,
    Feedback,
    ReviewDecision,
)
from graph.previews import Preview
from graph.receipts import Receipt, failure_words
from graph.runtime import open_agent
from graph.seam import Agent, AgentBusy, AgentUnreachable
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
    "EXPIRY_ACTOR",
    "Agent",
    "AgentBusy",
    "AgentContext",
    "AgentService",
    "AgentSettings",
    "AgentUnreachable",
    "Approve",
    "Decision",
    "DecisionKind",
    "Edit",
    "Expire",
    "Feedback",
    "PastDecision",
    "PendingReview",
    "Preview",
    "Receipt",
    "Refused",
    "ReviewDecision",
    "ReviewRequest",
    "RunOutcome",
    "SlackWebAPI",
    "ToolResult",
    "failure_words",
    "open_agent",
]
