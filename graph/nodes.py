"""The agent's three nodes, named as in the seed: call_llm, human_review_node, run_tool.

Each tool call that needs review gets its own ``human_review_node`` task (fanned out with
``Send``), so parallel calls give parallel interrupts that people answer in any order. Tools run
only in ``run_tool``, which LangGraph schedules once every review task of the step has finished;
that join is what guarantees the model is called again only when every call has its answer.
Nothing with a side effect happens before ``interrupt()``: on resume the node re-runs from the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, Send, interrupt

from graph.model import ChatModel
from graph.prompts import SYSTEM_PROMPT
from graph.review import (
    InvalidDecision,
    apply_edits,
    parse_decision,
    review_request,
    validate_args,
)
from graph.state import AgentState, ReviewTask
from graph.tools.registry import ToolRegistry
from graph.types import DecisionRecord, ToolCallData

RAN_WITH = "ran_with"
"""``ToolMessage.additional_kwargs`` key: the arguments the call ran with (after any edit)."""
AUTO_RULE = "auto_rule"
"""``ToolMessage.additional_kwargs`` key: why the call ran without review (None if reviewed)."""


def tool_error_message(error: Exception) -> str:
    """How a failing tool is reported to the model: the error, not a crashed run."""
    return f"Error: the tool failed: {type(error).__name__}: {error}"


def feedback_message(call: ToolCallData, record: DecisionRecord) -> ToolMessage:
    """The seed's 'mock result': the reviewer's words answer the call instead of running it."""
    who = f" ({record['by']})" if record["by"] else ""
    return ToolMessage(
        content=f"Not run. The reviewer{who} replied instead: {record['feedback']}",
        tool_call_id=call["id"],
        name=call["name"],
        artifact={"review_action": "feedback", "feedback": record["feedback"], "by": record["by"]},
    )


def last_ai_message(messages: Sequence[AnyMessage]) -> tuple[int, AIMessage] | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AIMessage):
            return index, message
    return None


def requester_of(messages: Sequence[AnyMessage]) -> str | None:
    """Who asked: the author of the latest human message (set by the caller as ``name``)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.name
    return None


class AgentNodes:
    """The nodes and routers, closed over the model and tools they are given."""

    def __init__(self, model: ChatModel, registry: ToolRegistry) -> None:
        self.model = model
        self.registry = registry
        self.tool_node = ToolNode(registry.tools, handle_tool_errors=tool_error_message)

    async def call_llm(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        response = await self.model.ainvoke(
            [SystemMessage(SYSTEM_PROMPT), *state["messages"]], config
        )
        return {"messages": [response]}

    async def route_after_llm(self, state: AgentState) -> str | list[Send]:
        """No tool calls: done. Otherwise one review task per call that needs review.

        Async although it never awaits: LangGraph runs a sync router or node in a worker thread,
        and the hop costs far more than the routing."""
        found = last_ai_message(state["messages"])
        if found is None or not found[1].tool_calls:
            return END
        calls = found[1].tool_calls
        reviewed = [call for call in calls if self.registry.policy(call["name"]) == "review"]
        if not reviewed:
            return "run_tool"
        requested_by = requester_of(state["messages"])
        return [
            Send(
                "human_review_node",
                ReviewTask(
                    tool_call=ToolCallData(
                        name=call["name"], args=call["args"], id=call["id"] or ""
                    ),
                    calls_in_message=len(calls),
                    requested_by=requested_by,
                ),
            )
            for call in reviewed
        ]

    async def human_review_node(self, task: ReviewTask) -> Command[Literal["run_tool", "call_llm"]]:
        """Ask for a decision (``interrupt``) and route on it; async for the same reason as
        :meth:`route_after_llm` (no worker thread per review)."""
        call = task["tool_call"]
        decision = interrupt(
            review_request(call, self.registry.info(call["name"]), task["requested_by"])
        )
        record = self._checked(call, decision)
        update: dict[str, Any] = {"decisions": {call["id"]: record}}
        if record["action"] != "feedback":
            return Command(goto="run_tool", update=update)
        update["messages"] = [feedback_message(call, record)]
        # The seed goes straight back to the model; with sibling calls, run_tool joins them first.
        return Command(
            goto="call_llm" if task["calls_in_message"] == 1 else "run_tool", update=update
        )

    def _checked(self, call: ToolCallData, decision: Any) -> DecisionRecord:
        """Fail closed: a decision that slipped past the service unvalidated runs nothing."""
        try:
            record = parse_decision(decision, call["id"])
            tool = self.registry.get(call["name"])
            if record["action"] == "update" and tool is not None:
                validate_args(tool, record["args"] or {})
            return record
        except InvalidDecision as error:
            return DecisionRecord(
                tool_call_id=call["id"],
                action="feedback",
                args=None,
                by=None,
                feedback=f"(the decision could not be applied: {error}; the call was not run)",
            )

    def _stamped(
        self,
        message: ToolMessage,
        call: dict[str, Any] | None,
        decisions: dict[str, DecisionRecord],
    ) -> ToolMessage:
        """The result, carrying the arguments it ran with and, for a call that ran without
        review, the rule that allowed it (for the audit trail). Kept in ``additional_kwargs``,
        which is stored with the message but never sent to the model."""
        if call is None:
            return message
        auto = None if call["id"] in decisions else self.registry.auto_rule(call["name"])
        stamp = {RAN_WITH: dict(call["args"]), AUTO_RULE: auto}
        return message.model_copy(
            update={"additional_kwargs": {**message.additional_kwargs, **stamp}}
        )

    async def run_tool(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """Run every approved (or auto) call of the last AI message that has no answer yet."""
        found = last_ai_message(state["messages"])
        if found is None:
            return {}
        index, message = found
        answered = {
            m.tool_call_id for m in state["messages"][index + 1 :] if isinstance(m, ToolMessage)
        }
        decisions = state.get("decisions") or {}
        edited = apply_edits(message, decisions)
        runnable: list[Any] = []
        refused: list[ToolMessage] = []
        for call in edited.tool_calls:
            call_id = call["id"] or ""
            if call_id in answered:
                continue
            record = decisions.get(call_id)
            approved = record is not None and record["action"] in ("continue", "update")
            if approved or self.registry.policy(call["name"]) == "auto":
                runnable.append({**call, "type": "tool_call"})
            else:
                refused.append(
                    ToolMessage(
                        content="Not run: no approval was recorded for this call.",
                        tool_call_id=call_id,
                        name=call["name"],
                        status="error",
                    )
                )
        results: list[ToolMessage] = []
        if runnable:
            output = await self.tool_node.ainvoke(runnable, config)
            ran = {call["id"]: call for call in runnable}
            results = [
                self._stamped(message, ran.get(message.tool_call_id), decisions)
                for message in (output["messages"] if isinstance(output, dict) else output)
            ]
        replaced: list[AnyMessage] = [edited] if edited is not message else []
        return {"messages": [*replaced, *results, *refused]}
