"""The agent's three nodes, named as in the seed: call_llm, human_review_node, run_tool.

Each tool call that needs review gets its own ``human_review_node`` task (fanned out with
``Send``), so parallel calls give parallel interrupts that people answer in any order. Tools run
only in ``run_tool``, which LangGraph schedules once every review task of the step has finished;
that join is what guarantees the model is called again only when every call has its answer.
Nothing with a side effect happens before ``interrupt()``: on resume the node re-runs from the top.

Every node and the router exist sync and async (``call_llm``/``call_llm_sync``, ...), written
once: the routing and review logic is sync and the async face calls it, the model and tool steps
share everything but the one call. So the hosted graph serves ``invoke``/``stream`` as well as
``ainvoke``/``astream``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool
from langgraph.graph import END
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, Send, interrupt

from graph.model import ChatModel
from graph.prompts import SYSTEM_PROMPT
from graph.protocols import DISMISSED, RETRY_NOTE
from graph.review import (
    InvalidDecision,
    apply_edits,
    as_seed_decision,
    check_bound,
    nul_path,
    parse_decision,
    review_request,
    validate_args,
)
from graph.state import AgentState, ReviewTask
from graph.streaming import reply_listener, streamed_message
from graph.sync import run_sync
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
    content = f"Not run. The reviewer{who} replied instead: {record['feedback']}"
    if record["feedback"] == DISMISSED:  # Agent Inbox's ignore, a reject without words
        content = f"Not run. The reviewer{who} dismissed this call without comment. {RETRY_NOTE}"
    return ToolMessage(
        content=content,
        tool_call_id=call["id"],
        name=call["name"],
        artifact={"review_action": "feedback", "feedback": record["feedback"], "by": record["by"]},
    )


def nul_refusal(call: ToolCallData, where: str) -> ToolMessage:
    """The error the model reads instead of a review for arguments holding a NUL character."""
    return ToolMessage(
        content=(
            f"Not run, and not shown for review: the argument `{where}` contains a NUL "
            "character (U+0000), which cannot be stored or shown to a reviewer. Propose the "
            "call again without it."
        ),
        tool_call_id=call["id"],
        name=call["name"],
        status="error",
    )


def unbound_refusal(call: Any, record: DecisionRecord) -> ToolMessage | None:
    """The last check before a tool runs: the arguments about to run must have the digest the
    decision was bound to (they could differ only if the state changed after the review took
    the decision in). None if they do, or if the decision is unbound."""
    try:
        check_bound(record, call["args"])
    except InvalidDecision as error:
        return ToolMessage(
            content=f"Not run: {error}.",
            tool_call_id=call["id"] or "",
            name=call["name"],
            status="error",
        )
    return None


def last_ai_message(messages: Sequence[AnyMessage]) -> tuple[int, AIMessage] | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, AIMessage):
            return index, message
    return None


def turn_start(messages: Sequence[AnyMessage]) -> int | None:
    """The index of the message that started the current turn: the first human message after
    the model's last reply that ended a turn (an AI message without tool calls)."""
    start: int | None = None
    for index, message in enumerate(messages):
        if isinstance(message, AIMessage) and not message.tool_calls:
            start = None
        elif isinstance(message, HumanMessage) and start is None:
            start = index
    return start


def requester_of(messages: Sequence[AnyMessage]) -> str | None:
    """Who asked: the author (``name``, set by the caller) of the message that started the turn.

    Not the latest message's author: whoever writes after the turn began did not start it."""
    start = turn_start(messages)
    return messages[start].name if start is not None else None


def requesters_of(messages: Sequence[AnyMessage]) -> list[str]:
    """Everyone whose message is in the conversation: each may have led to the call (Alice
    asks, the model asks back, Mallory says "yes"), so four-eyes keeps all of them from
    approving it. In order of first appearance."""
    names = (m.name for m in messages if isinstance(m, HumanMessage) and m.name)
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class ToolBatch:
    """One ``run_tool`` step, decided: the AI message, it with edits applied, the calls to run,
    the refusals, and the decisions it read."""

    message: AIMessage
    edited: AIMessage
    runnable: list[Any]
    refused: list[ToolMessage]
    decisions: dict[str, DecisionRecord]


class AgentNodes:
    """The nodes and routers, closed over the model and tools they are given."""

    def __init__(self, model: ChatModel, registry: ToolRegistry) -> None:
        self.model = model
        self.registry = registry
        self.tool_node = ToolNode(registry.tools, handle_tool_errors=tool_error_message)
        note = registry.unavailable_note
        self.system_prompt = f"{SYSTEM_PROMPT}\n\n{note}" if note else SYSTEM_PROMPT

    def _prompt(self, state: AgentState) -> list[AnyMessage]:
        return [SystemMessage(self.system_prompt), *state["messages"]]

    async def call_llm(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """One model call; streamed to the run's reply listener when it has one
        (``graph.streaming``), else asked whole."""
        listener = reply_listener()
        if listener is not None and hasattr(self.model, "astream"):
            model: Any = self.model
            message = await streamed_message(model, self._prompt(state), config, listener)
            return {"messages": [message]}
        return {"messages": [await self.model.ainvoke(self._prompt(state), config)]}

    def call_llm_sync(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """``call_llm`` for ``graph.invoke``/``graph.stream``: the model's own ``invoke`` when it
        has one (Claude, the offline planner), else its ``ainvoke`` run to completion."""
        invoke = getattr(self.model, "invoke", None)
        if callable(invoke):
            return {"messages": [invoke(self._prompt(state), config)]}
        return {"messages": [run_sync(lambda: self.model.ainvoke(self._prompt(state), config))]}

    async def route_after_llm(self, state: AgentState) -> str | list[Send]:
        """Async although it never awaits: LangGraph runs a sync router or node in a worker
        thread, and the hop costs far more than the routing. The logic is
        :meth:`route_after_llm_sync`, which sync runs use as is."""
        return self.route_after_llm_sync(state)

    def route_after_llm_sync(self, state: AgentState) -> str | list[Send]:
        """No tool calls: done. Otherwise one review task per call that needs review, and per
        call whose arguments hold a NUL character, auto or not: its task refuses it to the
        model (such a value can be neither stored nor shown), so it never runs."""
        found = last_ai_message(state["messages"])
        if found is None or not found[1].tool_calls:
            return END
        calls = found[1].tool_calls
        reviewed = [
            call
            for call in calls
            if self.registry.policy(call["name"]) == "review" or nul_path(call["args"])
        ]
        if not reviewed:
            return "run_tool"
        requested_by = requester_of(state["messages"])
        requesters = requesters_of(state["messages"])
        return [
            Send(
                "human_review_node",
                ReviewTask(
                    tool_call=ToolCallData(
                        name=call["name"], args=call["args"], id=call["id"] or ""
                    ),
                    calls_in_message=len(calls),
                    requested_by=requested_by,
                    requesters=requesters,
                ),
            )
            for call in reviewed
        ]

    async def human_review_node(self, task: ReviewTask) -> Command[Literal["run_tool", "call_llm"]]:
        """Async for the same reason as :meth:`route_after_llm` (no worker thread per review);
        the logic is :meth:`human_review_node_sync`."""
        return self.human_review_node_sync(task)

    def human_review_node_sync(self, task: ReviewTask) -> Command[Literal["run_tool", "call_llm"]]:
        """Ask for a decision (``interrupt``) and route on it.

        A decision that cannot be applied runs nothing and is not passed on: the same review is
        asked again with the error in it (each ask is its own interrupt; LangGraph replays the
        earlier answers on resume). A call whose arguments hold a NUL character is refused
        before any review: it could be neither stored nor shown, and the model is told why.
        """
        call = task["tool_call"]
        nul = nul_path(call["args"])
        if nul is not None:
            return self._route(task, nul_refusal(call, nul), None)
        info = self.registry.info(call["name"])
        requesters = task.get("requesters") or []
        error: InvalidDecision | None = None
        while True:
            request = review_request(call, info, task["requested_by"], requesters, error)
            checked = self._checked(call, interrupt(request))
            if not isinstance(checked, InvalidDecision):
                break
            error = checked
        record = checked
        if record["action"] != "feedback":
            return Command(goto="run_tool", update={"decisions": {call["id"]: record}})
        return self._route(task, feedback_message(call, record), record)

    def _route(
        self, task: ReviewTask, answer: ToolMessage, record: DecisionRecord | None
    ) -> Command[Literal["run_tool", "call_llm"]]:
        """Answer the call without running it. The seed goes straight back to the model; with
        sibling calls, run_tool joins them first."""
        update: dict[str, Any] = {"messages": [answer]}
        if record is not None:
            update["decisions"] = {record["tool_call_id"]: record}
        return Command(
            goto="call_llm" if task["calls_in_message"] == 1 else "run_tool", update=update
        )

    def _checked(self, call: ToolCallData, decision: Any) -> DecisionRecord | InvalidDecision:
        """Fail closed: a decision that slipped past the service unvalidated runs nothing."""
        try:
            record = parse_decision(as_seed_decision(decision, call["name"]), call["id"])
            tool = self.registry.get(call["name"])
            if record["action"] == "update" and tool is not None:
                record["args"] = validate_args(tool, record["args"] or {})
            # bound to the arguments it approved: those it would run must have its digest
            running = record["args"] if record["action"] == "update" else call["args"]
            check_bound(record, running or {})
            return record
        except InvalidDecision as error:
            return error

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
        batch = self._tool_batch(state)
        if batch is None:
            return {}
        output = await self.tool_node.ainvoke(batch.runnable, config) if batch.runnable else None
        return self._tool_results(batch, output)

    def run_tool_sync(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """:meth:`run_tool` for sync runs: the tools' sync implementations when every one has
        one, else the async ones run to completion (MCP tools are async only)."""
        batch = self._tool_batch(state)
        if batch is None:
            return {}
        output: Any = None
        if batch.runnable and all(self._runs_sync(c["name"]) for c in batch.runnable):
            output = self.tool_node.invoke(batch.runnable, config)
        elif batch.runnable:
            output = run_sync(lambda: self.tool_node.ainvoke(batch.runnable, config))
        return self._tool_results(batch, output)

    def _runs_sync(self, name: str) -> bool:
        tool = self.registry.get(name)
        return not (isinstance(tool, StructuredTool) and tool.func is None)

    def _tool_batch(self, state: AgentState) -> ToolBatch | None:
        """What :meth:`run_tool` will do, decided before anything runs: the calls to run (with
        edits applied) and the refusals of calls that have no approval."""
        found = last_ai_message(state["messages"])
        if found is None:
            return None
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
            changed = unbound_refusal(call, record) if record is not None and approved else None
            if changed is not None:
                refused.append(changed)
            elif approved or self.registry.policy(call["name"]) == "auto":
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
        return ToolBatch(message, edited, runnable, refused, decisions)

    def _tool_results(self, batch: ToolBatch, output: Any) -> dict[str, Any]:
        results: list[ToolMessage] = []
        if output is not None:
            ran = {call["id"]: call for call in batch.runnable}
            results = [
                self._stamped(message, ran.get(message.tool_call_id), batch.decisions)
                for message in (output["messages"] if isinstance(output, dict) else output)
            ]
        replaced: list[AnyMessage] = [batch.edited] if batch.edited is not batch.message else []
        return {"messages": [*replaced, *results, *batch.refused]}
