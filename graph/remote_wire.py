"""What crosses the wire to LangGraph Server, in the seam's terms; pure (no I/O).

Our thread ids as the server's (:func:`server_thread_id`), the server's failures as the seam's
errors (:func:`translated`), messages and what a run added as a :class:`RunOutcome`
(:func:`outcome_of`), the run metadata that records who decided what (:data:`DECISIONS`,
:func:`past_decision`: never the arguments), answers kept on the server's store until their
interrupt's last one arrives (:func:`stored_answer`), and whether a review takes a decision at
all (:func:`check_decision`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from langchain_core.messages import AIMessage, ToolMessage
from langgraph_sdk.errors import ConflictError, InternalServerError
from langgraph_sdk.schema import Run

from graph.decisions import Approve, Edit, Expire, Feedback, ReviewDecision, stored_action
from graph.remote_reviews import Ask
from graph.remote_reviews import allowed as allows
from graph.review import InvalidDecision, validate_json_args
from graph.seam import AgentBusy, AgentUnreachable
from graph.service import message_text, tool_result
from graph.types import PastDecision, PendingReview, Refused, ReviewAction, RunOutcome

THREAD_NAMESPACE = uuid.UUID("6f1b6a0e-3c55-4d7e-9a57-2f0d3c1b9e41")
"""Fixed forever: server thread ids are derived from it (changing it loses every thread)."""

DECISIONS = "slack_decisions"
"""Run metadata: ``{review address: {"action": stored word, "by": user}}`` for each decision
the run applies."""
VIA = "slack_via"
"""Run metadata: the review whose answer started the run (its handler reports the outcome)."""
MESSAGE = "slack_message"
"""Run metadata: the id of the message that started a turn."""
AFTER = "slack_after"
"""Run metadata: the id of the thread's last message before a resume (what the run added
follows it)."""
CALLS = "slack_calls"
"""Run metadata: the tool call ids a resume answers (to find the run again from a call)."""
STORE_PREFIX = "slack_approval_answers"
"""The server store's namespace prefix for answers kept until their interrupt's last one."""
RECENT_RUNS = 50
"""How many of a thread's latest runs are searched for a review's decision."""


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def server_thread_id(thread_id: str) -> str:
    """The server's thread for one of ours: the same everywhere, forever."""
    return str(uuid.uuid5(THREAD_NAMESPACE, thread_id))


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """The server's failures in the seam's words: busy (409) and unreachable."""
    try:
        yield
    except ConflictError as error:
        raise AgentBusy(f"the agent server refused a second run on a busy thread ({what})") from (
            error
        )
    except (httpx.TransportError, InternalServerError) as error:
        raise AgentUnreachable(f"the agent server did not answer ({what}): {error}") from error


def human_message(text: str, user: str | None, message_id: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "human", "content": text}
    if user:
        message["name"] = user
    if message_id:
        message["id"] = message_id
    return message


def messages_of(values: Any) -> list[dict[str, Any]]:
    if not isinstance(values, Mapping):
        return []
    found = values.get("messages")
    return [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []


def outcome_of(
    thread_id: str, new: Sequence[Mapping[str, Any]], pending: list[PendingReview]
) -> RunOutcome:
    """What a run did, from the messages it added (JSON, as the server returns them)."""
    results = []
    replies = []
    for message in new:
        if message.get("type") == "tool":
            result = tool_result(ToolMessage.model_validate(message))
            results.append(
                dataclasses.replace(result, status="declined") if declined(message) else result
            )
        elif message.get("type") == "ai":
            replies.append(message_text(AIMessage.model_validate(message)))
    return RunOutcome(
        thread_id=thread_id,
        tool_results=results,
        pending=pending,
        reply=next((text for text in reversed(replies) if text), None),
    )


HITL_DECISION_SOURCE = "hitl_interrupt_decision"
"""How the HITL middleware marks the tool message it writes instead of running a call."""


def declined(message: Mapping[str, Any]) -> bool:
    """A call the HITL middleware did not run (rejected, or answered by a person): its result
    is the person's words, not the tool's, so it is not shown as a result (as for the seed's
    feedback)."""
    extra = message.get("additional_kwargs") or {}
    data = extra.get("lc_data") if isinstance(extra, Mapping) else None
    return (
        isinstance(extra, Mapping)
        and extra.get("lc_source") == HITL_DECISION_SOURCE
        and isinstance(data, Mapping)
        and data.get("decision") in ("reject", "respond")
    )


def calls_in(messages: Sequence[Mapping[str, Any]], tool_call_id: str) -> bool:
    """Whether a model's message in ``messages`` proposed this call."""
    return any(
        isinstance(call, Mapping) and call.get("id") == tool_call_id
        for message in messages
        if message.get("type") == "ai"
        for call in message.get("tool_calls") or []
    )


def past_decision(address: str, run: Run) -> PastDecision | None:
    """Who decided a review, read from the run that applied it; None if this run did not."""
    decisions = (run.get("metadata") or {}).get(DECISIONS)
    entry = decisions.get(address) if isinstance(decisions, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    action = _ACTIONS.get(str(entry.get("action")))
    if action is None:
        return None
    by = entry.get("by")
    return PastDecision(
        interrupt_id=address,
        action=action,
        decided_by=by if isinstance(by, str) else None,
        decided_at=moment(run.get("created_at")),
    )


_ACTIONS: dict[str, ReviewAction] = {
    "continue": "continue",
    "update": "update",
    "feedback": "feedback",
    "expired": "feedback",
}


def moment(value: object) -> datetime:
    """A timestamp as the server sends it (ISO text over JSON); now if it is missing."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return datetime.now(UTC)


def decision_entry(decision: ReviewDecision) -> dict[str, Any]:
    entry: dict[str, Any] = {"action": stored_action(decision.kind)}
    if decision.by:
        entry["by"] = decision.by
    return entry


def stored_answer(decision: ReviewDecision) -> dict[str, Any]:
    """An answer kept on the server's store until its interrupt's last one arrives."""
    entry = decision_entry(decision)
    if isinstance(decision, Edit):
        entry["args"] = dict(decision.args)
    elif isinstance(decision, Feedback | Expire):
        entry["text"] = decision.text
    return entry


def answer_from_store(value: Mapping[str, Any]) -> ReviewDecision | None:
    action, by = value.get("action"), value.get("by")
    by = by if isinstance(by, str) else None
    if action == "continue":
        return Approve(by)
    if action == "update" and isinstance(value.get("args"), Mapping):
        return Edit(value["args"], by)
    if action == "feedback":
        return Feedback(str(value.get("text") or ""), by)
    if action == "expired":
        return Expire(str(value.get("text") or ""))
    return None


def left_unanswered(tool: str) -> str:
    """What the thread is told when an expiry cannot answer the interrupt."""
    return (
        f"This review expired, so `{tool}` did not run. The agent allows only approving it, "
        "so it is left waiting on its server; start a new conversation to ask again."
    )


def check_decision(ask: Ask, decision: ReviewDecision) -> Refused | None:
    """A decision the review does not accept, or an edit its tool's schema (when the interrupt
    gives one) refuses, before anything is sent: the Edit form shows why under the field.

    An expiry of an interrupt that allows only approving is ``left_unanswered``: nothing is
    sent (an expiry never runs the call), the interrupt stays waiting on the server, and the
    bot marks the review expired once."""
    if isinstance(decision, Expire) and not allows(ask, decision):
        return Refused("left_unanswered", left_unanswered(ask.review.tool_name))
    if not allows(ask, decision):
        kinds = ask.review.request.get("allowed_decisions") or []
        return Refused(
            "invalid_decision",
            f"This review does not accept {decision.kind} (it allows {', '.join(kinds)}).",
        )
    tool = ask.review.request["tool"]
    if isinstance(decision, Edit) and tool.get("args_schema", {}).get("properties"):
        try:
            validate_json_args(tool["name"], tool["args_schema"], decision.args)
        except InvalidDecision as error:
            return Refused("invalid_decision", str(error), argument=error.field)
    return None
