"""Small typed records that cross the seam between the agent and its callers.

Everything here is plain data: the interrupt payload is stored in the checkpoint (so it must be
JSON-friendly), and results are handed to the Slack side, which must not need LangGraph types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

ReviewAction = Literal["continue", "update", "feedback"]
"""The seed's resume vocabulary: run as proposed, run with edited arguments, or talk back.
Callers speak the typed records of :mod:`graph.decisions`; these words are their wire form at
the resume boundary (``graph.decisions.to_wire``)."""

ReviewPolicy = Literal["review", "auto"]
"""Whether a tool's calls wait for a person ("review") or run directly ("auto")."""

REVIEW_QUESTION = "Is this correct?"


@dataclass(frozen=True)
class ModeRule:
    """One configuration source's word on whether a tool's calls wait for a person.

    ``tool`` is a tool name, or ``"*"`` for every tool that no other rule of the same source
    names. ``source`` says where the rule is written (``AGENT_AUTO_APPROVE``, a module's
    ``REVIEW_POLICY``, a line of the policy file), for start-up warnings and the audit trail.
    """

    tool: str
    policy: ReviewPolicy
    source: str


class ToolCallData(TypedDict):
    """A tool call as LangChain represents it, reduced to what a reviewer sees."""

    name: str
    args: dict[str, Any]
    id: str


class ToolInfo(TypedDict):
    """What a reviewer needs to know about the tool itself, including how to edit its input."""

    name: str
    description: str
    args_schema: dict[str, Any]
    server: NotRequired[str]
    """The MCP server the tool comes from (absent for other tools)."""
    display_name: NotRequired[str]
    """``server.tool``: how people read an MCP tool's name (the model sees ``server__tool``)."""
    annotations: NotRequired[dict[str, Any]]
    """The MCP server's hints about the tool (``readOnlyHint``, ``destructiveHint``, ...)."""
    preview: NotRequired[bool]
    """True when the tool offers a preview (``graph.previews``), so the card can say one is
    on its way."""


class InboxActionRequest(TypedDict):
    """Agent Inbox's ``ActionRequest``: the call as its reviewer sees and edits it."""

    action: str
    args: dict[str, Any]


class InboxConfig(TypedDict):
    """Agent Inbox's ``HumanInterruptConfig``: which of its controls the reviewer gets."""

    allow_accept: bool
    allow_edit: bool
    allow_respond: bool
    allow_ignore: bool


class ReviewRequest(TypedDict):
    """The value passed to ``interrupt()``: one pending tool call awaiting a human decision.

    Besides the seed's fields it carries Agent Inbox's ``HumanInterrupt`` fields
    (``action_request``, ``config``, ``description``), so Agent Inbox shows it with its
    controls; ``action_request.args`` is always ``tool_call.args``."""

    question: str
    tool_call: ToolCallData
    tool: ToolInfo
    requested_by: str | None
    """The author of the message that started the turn in which the call was proposed."""
    requesters: NotRequired[list[str]]
    """Everyone whose message is in the conversation before the call: all of them had a say in
    it, so four-eyes keeps each of them from approving it. Absent in reviews stored before it
    existed (then only ``requested_by`` counts)."""
    error: NotRequired[str]
    """Why the previous answer to this same review could not be applied (it is asked again)."""
    error_argument: NotRequired[str]
    """The argument that answer got wrong, when there is one."""
    action_request: NotRequired[InboxActionRequest]
    """Agent Inbox: the call (absent in reviews stored before it existed)."""
    config: NotRequired[InboxConfig]
    """Agent Inbox: accept, edit, respond and ignore are all allowed."""
    description: NotRequired[str]
    """Agent Inbox: the question, the tool's description and any error, in Markdown."""
    allowed_decisions: NotRequired[list[str]]
    """The answers the agent accepts, as decision kinds (``approve``, ``edit``, ``feedback``);
    absent: all three. Set for a graph on LangGraph Server whose interrupt says so (the HITL
    middleware's ``allowed_decisions``); the card shows only these buttons."""


class Decision(TypedDict, total=False):
    """A resume value, as the seed defines it, optionally saying who decided."""

    action: ReviewAction
    data: Any
    by: str
    digest: str
    """``graph.digest.args_digest`` of the arguments approved (``continue``) or of the edit
    (``update``): the call runs only with arguments of that digest. Optional."""


class DecisionRecord(TypedDict):
    """A decision as kept in graph state, keyed by tool call id, after validation."""

    tool_call_id: str
    action: ReviewAction
    args: dict[str, Any] | None
    feedback: str | None
    by: str | None
    digest: NotRequired[str | None]
    """What the approval is bound to (absent in records checkpointed before it existed, and
    None for an unbound decision): ``run_tool`` checks it once more just before running."""


@dataclass(frozen=True)
class PendingReview:
    """A tool call waiting for a decision, addressed by its interrupt id."""

    thread_id: str
    interrupt_id: str
    request: ReviewRequest

    @property
    def tool_call_id(self) -> str:
        return self.request["tool_call"]["id"]

    @property
    def tool_name(self) -> str:
        return self.request["tool_call"]["name"]

    @property
    def args(self) -> dict[str, Any]:
        return self.request["tool_call"]["args"]


@dataclass(frozen=True)
class ToolResult:
    """What one executed (or declined) tool call produced, as sent back to the model."""

    tool_call_id: str
    tool_name: str
    content: str
    status: Literal["success", "error", "declined"]
    args: dict[str, Any] = field(default_factory=dict)
    """The arguments the call ran with (after any edit); empty when declined or unknown."""
    auto_rule: str | None = None
    """Why the call ran without a review (e.g. ``AGENT_AUTO_APPROVE``); None if it was reviewed."""
    receipt: dict[str, Any] | None = None
    """What the call did, for people (a ``graph.receipts.Receipt``): the tool's own, or a
    failure in plain words; None when the tool gives none."""


@dataclass(frozen=True)
class RunOutcome:
    """What a run of the agent did: tools it ran, reviews it now waits for, and its reply."""

    thread_id: str
    tool_results: list[ToolResult] = field(default_factory=list)
    pending: list[PendingReview] = field(default_factory=list)
    reply: str | None = None


@dataclass(frozen=True)
class PastDecision:
    """Who answered an interrupt, how and when; used to explain a stale click."""

    interrupt_id: str
    action: ReviewAction
    decided_by: str | None
    decided_at: datetime


RefusalReason = Literal[
    "unknown_thread",
    "not_pending",
    "invalid_decision",
    "reviews_pending",
    "args_changed",
    "left_unanswered",
]
"""``left_unanswered``: an expiry the interrupt cannot take (it allows only approving): nothing
ran and nothing was sent; the caller marks the review expired and does not retry."""


@dataclass(frozen=True)
class Refused:
    """A request the service declined without running anything, and why, in words for a person.

    ``argument`` names the offending argument when an edit fails validation; ``previous`` says who
    already decided when the review is no longer pending. ``args_changed``: the decision is
    bound to arguments (its digest) other than the ones that would run, so nothing ran.
    """

    reason: RefusalReason
    message: str
    argument: str | None = None
    previous: PastDecision | None = None
    pending: list[PendingReview] = field(default_factory=list)
