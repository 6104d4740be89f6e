"""The one seam between callers (the Slack bot, tests, scripts) and the agent.

Three verbs: start a turn, list pending reviews, answer one review. Answers are checked before
anything runs, serialised per thread across processes, and re-checked after the thread is held,
because LangGraph itself would happily run a stale or duplicate resume (or start a fresh graph
for an unknown thread).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot

from graph import decision_log
from graph.agent import AgentGraph
from graph.context import AgentContext
from graph.db import Pool, PooledPostgresSaver, delete_thread_rows, thread_activity
from graph.decisions import Approve, Edit, Expire, Feedback, ReviewDecision, to_wire
from graph.locks import LeaseTimeout, ThreadLeases
from graph.nodes import AUTO_RULE, RAN_WITH
from graph.previews import Preview, plain, run_preview
from graph.receipts import failure_receipt, receipt_of
from graph.review import ArgsChanged, InvalidDecision, check_bound, parse_decision, validate_args
from graph.seam import Agent
from graph.streaming import tell_result
from graph.tools.mcp import McpStatus
from graph.tools.registry import ToolRegistry
from graph.types import (
    Decision,
    DecisionRecord,
    PendingReview,
    Refused,
    ReviewRequest,
    RunOutcome,
    ToolResult,
)

log = logging.getLogger(__name__)

AnyDecision = ReviewDecision | Decision | Mapping[str, Any]
"""A typed decision (what the bot sends) or the seed's resume value (scripts, tests)."""


def wire_of(decision: AnyDecision) -> Mapping[str, Any]:
    """The seed's resume value: typed decisions are translated here, at the resume boundary."""
    if isinstance(decision, Approve | Edit | Feedback | Expire):
        return to_wire(decision)
    return decision


def thread_config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _blocks_text(message: ToolMessage) -> str:
    """A result given as content blocks (MCP tools), as text: its text blocks, one a line."""
    blocks = message.content if isinstance(message.content, list) else []
    texts = [b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return "\n".join(texts) if texts else message.text


def message_text(message: AIMessage) -> str:
    """The visible text of an AI message, whether its content is a string or blocks."""
    if isinstance(message.content, str):
        return message.content.strip()
    parts = [
        block.get("text", "") if isinstance(block, dict) else str(block)
        for block in message.content
        if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
    ]
    return "\n".join(part for part in parts if part).strip()


def tool_result(message: ToolMessage) -> ToolResult:
    artifact = message.artifact if isinstance(message.artifact, dict) else {}
    status = "declined" if artifact.get("review_action") == "feedback" else message.status
    content = message.content if isinstance(message.content, str) else _blocks_text(message)
    ran_with = message.additional_kwargs.get(RAN_WITH)
    auto_rule = message.additional_kwargs.get(AUTO_RULE)
    receipt = failure_receipt(content) if status == "error" else receipt_of(message.artifact)
    return ToolResult(
        tool_call_id=message.tool_call_id,
        tool_name=message.name or "",
        content=content,
        status=status,
        args=dict(ran_with) if isinstance(ran_with, dict) else {},
        auto_rule=auto_rule if isinstance(auto_rule, str) and status != "declined" else None,
        receipt=dict(receipt) if receipt and status != "declined" else None,
    )


def pending_from(thread_id: str, snapshot: StateSnapshot) -> list[PendingReview]:
    return [
        PendingReview(
            thread_id=thread_id, interrupt_id=item.id, request=cast(ReviewRequest, item.value)
        )
        for item in snapshot.interrupts
        if isinstance(item.value, dict) and "tool_call" in item.value
    ]


class AgentService:
    """Start turns, list reviews, answer them; safe to share across tasks and replicas.

    The in-process implementation of :class:`graph.seam.Agent`."""

    def __init__(
        self, graph: AgentGraph, registry: ToolRegistry, pool: Pool, leases: ThreadLeases
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.pool = pool
        self.leases = leases

    @property
    def tool_names(self) -> Collection[str]:
        return self.registry.names

    @property
    def tool_schemas(self) -> Mapping[str, Mapping[str, Any]]:
        return {name: self.registry.info(name)["args_schema"] for name in self.registry.names}

    @property
    def review_sources(self) -> Mapping[str, str]:
        return {
            name: source
            for name in self.registry.names
            if (source := self.registry.review_source(name)) is not None
        }

    @property
    def mcp_tools(self) -> Mapping[str, tuple[str, dict[str, Any]]]:
        return self.registry.mcp_tools()

    @property
    def tool_servers(self) -> Sequence[McpStatus]:
        return self.registry.servers

    async def start_turn(
        self,
        thread_id: str,
        text: str,
        *,
        user: str | None = None,
        context: AgentContext | None = None,
        message_id: str | None = None,
    ) -> RunOutcome | Refused:
        """Add the user's message and run until the agent replies or waits for a review.

        A thread with reviews outstanding is refused: a new message there would leave a tool
        call without its answer, which Claude rejects. ``message_id`` (e.g. derived from the
        Slack message) lets a caller that died mid-turn find out later whether it got in.
        """
        async with self.leases.hold(thread_id):
            snapshot = await self.graph.aget_state(thread_config(thread_id))
            pending = pending_from(thread_id, snapshot)
            if pending:
                return Refused(
                    "reviews_pending",
                    f"{len(pending)} review(s) in this thread need a decision first.",
                    pending=pending,
                )
            message = HumanMessage(content=text, name=user, id=message_id)
            return await self._run({"messages": [message]}, thread_id, context)

    async def has_message(self, thread_id: str, message_id: str) -> bool:
        snapshot = await self.graph.aget_state(thread_config(thread_id))
        messages = snapshot.values.get("messages", []) if snapshot.values else []
        return any(message.id == message_id for message in messages)

    async def preview(
        self, tool_name: str, args: Mapping[str, Any], *, context: AgentContext | None = None
    ) -> Preview | None:
        """See :meth:`graph.seam.Agent.preview`. Arguments the tool would refuse get a preview
        saying so (the call would not run as proposed); the tool's own preview sees them as
        the tool would (validated, normalised)."""
        preview, tool = self.registry.preview(tool_name), self.registry.get(tool_name)
        if preview is None or tool is None:
            return None
        try:
            checked = validate_args(tool, args)
        except InvalidDecision as error:
            return Preview(
                summary=f":warning: The tool would refuse these arguments: {plain(str(error))}",
                ok=False,
            )
        return await run_preview(preview, checked, context or AgentContext())

    async def pending_reviews(self, thread_id: str) -> list[PendingReview]:
        return pending_from(thread_id, await self.graph.aget_state(thread_config(thread_id)))

    async def check(
        self, thread_id: str, interrupt_id: str, decision: AnyDecision
    ) -> Refused | None:
        """Validate a decision without running anything (for a form that must answer in 3 s)."""
        decision = wire_of(decision)
        snapshot = await self.graph.aget_state(thread_config(thread_id))
        verdict = await self._verdict(thread_id, interrupt_id, decision, snapshot)
        return verdict if isinstance(verdict, Refused) else None

    async def answer(
        self,
        thread_id: str,
        interrupt_id: str,
        decision: AnyDecision,
        *,
        context: AgentContext | None = None,
    ) -> RunOutcome | Refused:
        """Apply one decision to one pending review; refuse (running nothing) if it is not."""
        decision = wire_of(decision)
        try:
            parse_decision(decision, "")
        except InvalidDecision as error:
            return Refused("invalid_decision", str(error), argument=error.field)
        async with self.leases.hold(thread_id) as lease:
            snapshot = await self.graph.aget_state(thread_config(thread_id))
            verdict = await self._verdict(thread_id, interrupt_id, decision, snapshot)
            if isinstance(verdict, Refused):
                return verdict
            review, record = verdict
            await decision_log.record(self.pool, thread_id, interrupt_id, review.tool_name, record)
            resume = {
                "action": record["action"],
                "data": _resume_data(record),
                **({"by": record["by"]} if record["by"] else {}),
                **({"digest": record["digest"]} if record.get("digest") else {}),
            }
            outcome = await self._run(Command(resume={interrupt_id: resume}), thread_id, context)
            decision_log.mark_applied_with(lease, thread_id, interrupt_id)
            return outcome

    async def resume_interrupted(
        self, thread_id: str, *, context: AgentContext | None = None
    ) -> RunOutcome | None:
        """Finish a run that stopped between two steps because its process died (e.g. after a
        decision was taken in, before the tools ran): it has steps to go and no review waits.
        None if the thread is at rest or waiting for a review."""
        async with self.leases.hold(thread_id):
            snapshot = await self.graph.aget_state(thread_config(thread_id))
            # `next` leaves out tasks that already finished; a step whose tasks all finished
            # but was never committed (the process died in between) still has `tasks`.
            unfinished = snapshot.next or snapshot.tasks
            if snapshot.created_at is None or not unfinished or snapshot.interrupts:
                return None
            log.warning("finishing the run of %s that stopped mid-way", thread_id)
            return await self._run(None, thread_id, context)

    async def recap(
        self, thread_id: str, tool_call_id: str | None = None, *, after_message: str | None = None
    ) -> RunOutcome:
        """What followed a tool call (or a message), read back from the checkpoint: for a
        caller that applied a decision or started a turn, then died before it could report."""
        snapshot = await self.graph.aget_state(thread_config(thread_id))
        messages = list(snapshot.values.get("messages", [])) if snapshot.values else []
        start = next(
            (
                index
                for index, message in enumerate(messages)
                if (after_message is not None and message.id == after_message)
                or (
                    isinstance(message, AIMessage)
                    and any(call["id"] == tool_call_id for call in message.tool_calls)
                )
            ),
            len(messages),
        )
        after = messages[start + 1 :]
        replies = [message_text(m) for m in after if isinstance(m, AIMessage)]
        return RunOutcome(
            thread_id=thread_id,
            tool_results=[tool_result(m) for m in after if isinstance(m, ToolMessage)],
            pending=pending_from(thread_id, snapshot),
            reply=next((text for text in reversed(replies) if text), None),
        )

    async def last_activity(self, thread_ids: Sequence[str]) -> Mapping[str, datetime]:
        return await thread_activity(self.pool, thread_ids)

    async def delete_threads(
        self, thread_ids: Sequence[str], *, idle_before: datetime
    ) -> list[str]:
        """See :meth:`graph.seam.Agent.delete_threads`. The lease wait is short: a thread
        someone is using is not idle, and the next retention pass looks again."""
        gone: list[str] = []
        # The same leases (and in-process locks), with a short wait.
        leases = dataclasses.replace(self.leases, wait_seconds=1.0)
        for thread_id in thread_ids:
            try:
                async with leases.hold(thread_id):
                    if await delete_thread_rows(self.pool, thread_id, idle_before):
                        gone.append(thread_id)
            except LeaseTimeout:
                continue
            saver = self.graph.checkpointer
            if isinstance(saver, PooledPostgresSaver):
                saver.chunk_memory.forget(thread_id)
        return gone

    async def _verdict(
        self,
        thread_id: str,
        interrupt_id: str,
        decision: Mapping[str, Any],
        snapshot: StateSnapshot,
    ) -> Refused | tuple[PendingReview, DecisionRecord]:
        if snapshot.created_at is None:
            return Refused("unknown_thread", f"There is no conversation {thread_id!r}.")
        review = next(
            (r for r in pending_from(thread_id, snapshot) if r.interrupt_id == interrupt_id), None
        )
        if review is None:
            previous = await decision_log.find(self.pool, thread_id, interrupt_id)
            return Refused(
                "not_pending",
                "This review is no longer waiting for a decision.",
                previous=previous,
            )
        try:
            record = parse_decision(decision, review.tool_call_id)
            tool = self.registry.get(review.tool_name)
            if record["action"] == "update" and tool is not None:
                record["args"] = validate_args(tool, record["args"] or {})
            check_bound(record, record["args"] if record["args"] is not None else review.args)
        except ArgsChanged as error:
            return Refused("args_changed", str(error))
        except InvalidDecision as error:
            return Refused("invalid_decision", str(error), argument=error.field)
        return review, record

    async def _run(
        self, graph_input: Any, thread_id: str, context: AgentContext | None
    ) -> RunOutcome:
        config = thread_config(thread_id)
        results: list[ToolResult] = []
        reply: str | None = None
        # A run stops at the end of the step in which any review interrupts, and every review
        # still open (siblings included) interrupts again in that step: so the interrupts the
        # stream reports are exactly the pending reviews, with no state read afterwards.
        waiting: dict[str, PendingReview] = {}
        listener = context.reply if context is not None else None
        async for chunk in self.graph.astream(
            graph_input,
            config,
            context=context or AgentContext(),
            stream_mode="updates",
            durability="sync",  # a step is on disk before the next starts: crashes lose none
        ):
            for item in chunk.get("__interrupt__", ()):
                if isinstance(item.value, dict) and "tool_call" in item.value:
                    waiting[item.id] = PendingReview(
                        thread_id=thread_id,
                        interrupt_id=item.id,
                        request=cast(ReviewRequest, item.value),
                    )
            if chunk.get("__metadata__", {}).get("cached"):
                continue  # a write replayed from before the resume, already reported then
            for node, update in chunk.items():
                if node.startswith("__") or not isinstance(update, dict):
                    continue
                for message in update.get("messages", []):
                    if isinstance(message, ToolMessage):
                        results.append(tool_result(message))
                        if listener is not None:  # before the next step: the model's words
                            await tell_result(listener, results[-1])
                    elif isinstance(message, AIMessage) and node == "call_llm":
                        reply = message_text(message) or reply
        return RunOutcome(
            thread_id=thread_id, tool_results=results, pending=list(waiting.values()), reply=reply
        )


def _resume_data(record: DecisionRecord) -> Any:
    if record["action"] == "update":
        return record["args"]
    if record["action"] == "feedback":
        return record["feedback"]
    return None


def _implements_the_seam(service: AgentService) -> Agent:
    return service  # mypy checks here that AgentService is an Agent
