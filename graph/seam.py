"""The one interface through which the bot reaches the agent.

The bot depends on :class:`Agent` only: start a turn, list and check and answer a review,
preview what a call would do (``graph.previews``), read back what followed, finish a run a
dead process left half-way, name the tools (for the policy's start-up checks), and, for
retention, tell when threads were last active and delete idle ones
(the bot never touches the agent's tables). :class:`graph.service.AgentService` implements it
in process, :class:`graph.remote.RemoteAgent` over LangGraph Server's API; the review lifecycle
is the same for both. Answers travel as :mod:`graph.decisions` records.

:class:`AgentBusy` is the error a caller sees when a conversation stayed busy with another
request for too long (today: the thread lease was not granted in time, or LangGraph Server
refused a second run on a busy thread). :class:`AgentUnreachable` is the error a caller sees
when the agent is hosted elsewhere (``graph.remote``) and its server does not answer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from graph.context import AgentContext
from graph.decisions import ReviewDecision
from graph.locks import LeaseTimeout
from graph.previews import Preview
from graph.tools.mcp import McpStatus
from graph.types import PendingReview, Refused, RunOutcome

AgentBusy = LeaseTimeout
"""Raised when the conversation is busy with another request (a :class:`TimeoutError`)."""


class AgentUnreachable(ConnectionError):
    """The agent's server could not be reached, or broke off mid-request.

    Whether a request that broke off reached the server is unknown: a caller re-reads the
    review (``pending_reviews``) before it gives a decision back, as after any failure."""


class Agent(Protocol):
    """What the bot may ask of the agent. Every method is safe to call from many tasks and
    replicas at once; a refusal is a :class:`Refused` value, never an exception."""

    @property
    def tool_names(self) -> Collection[str]:
        """The tools the agent may call (so a policy naming another one is caught)."""
        ...

    @property
    def tool_schemas(self) -> Mapping[str, Mapping[str, Any]]:
        """Each tool's argument schema (JSON schema), so the policy's rules on arguments are
        type-checked at start-up (read-only)."""
        ...

    @property
    def review_sources(self) -> Mapping[str, str]:
        """Where each reviewed tool's review comes from (``bot.policy`` refuses a rule whose
        ``mode = "auto"`` would lift a review another source asks for: review wins)."""
        ...

    @property
    def mcp_tools(self) -> Mapping[str, tuple[str, dict[str, Any]]]:
        """MCP tools by the model's name: the name people read (``server.tool``) and the
        server's hints, for the policy's hint rules."""
        ...

    @property
    def tool_servers(self) -> Sequence[McpStatus]:
        """Each configured MCP server: its tools, or why it has none (for ``/readyz``)."""
        ...

    async def start_turn(
        self,
        thread_id: str,
        text: str,
        *,
        user: str | None = None,
        context: AgentContext | None = None,
        message_id: str | None = None,
    ) -> RunOutcome | Refused: ...

    async def has_message(self, thread_id: str, message_id: str) -> bool: ...

    async def preview(
        self, tool_name: str, args: Mapping[str, Any], *, context: AgentContext | None = None
    ) -> Preview | None:
        """What a call of ``tool_name`` with ``args`` would do (``graph.previews``), without
        doing it; None when the tool offers no preview, or its preview failed or took longer
        than ``graph.previews.PREVIEW_SECONDS``. Never raises for a preview's own failure."""
        ...

    async def pending_reviews(self, thread_id: str) -> list[PendingReview]: ...

    async def check(
        self, thread_id: str, interrupt_id: str, decision: ReviewDecision
    ) -> Refused | None: ...

    async def answer(
        self,
        thread_id: str,
        interrupt_id: str,
        decision: ReviewDecision,
        *,
        context: AgentContext | None = None,
    ) -> RunOutcome | Refused: ...

    async def resume_interrupted(
        self, thread_id: str, *, context: AgentContext | None = None
    ) -> RunOutcome | None: ...

    async def recap(
        self, thread_id: str, tool_call_id: str | None = None, *, after_message: str | None = None
    ) -> RunOutcome: ...

    async def last_activity(self, thread_ids: Sequence[str]) -> Mapping[str, datetime]:
        """When each thread's state last changed (its latest checkpoint), or now if it waits
        for a review (waiting for a person is activity); a thread with no state is left out."""
        ...

    async def delete_threads(
        self, thread_ids: Sequence[str], *, idle_before: datetime
    ) -> list[str]:
        """Delete every trace the agent keeps of each thread (checkpoints, chunks, decisions)
        whose state has not changed since ``idle_before``, each under its thread lease, so a
        run in progress is never cut. A thread busy or active since is skipped. Returns the
        threads that are gone (deleting one already gone counts: it is idempotent)."""
        ...
