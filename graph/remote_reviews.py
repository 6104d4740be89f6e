"""The reviews of a graph hosted on LangGraph Server: each interrupt its server reports becomes
the reviews the bot shows, and the bot's decisions become the one resume value it expects.

An interrupt is read in one of the vocabularies of :mod:`graph.protocols` (the seed's
``{question, tool_call}``, Agent Inbox ``HumanInterrupt``, the HITL middleware's
``{action_requests, review_configs}``); one that fits none is shown as readable JSON and may
only be answered with words (:func:`unknown_request`). Pure: no I/O.

Addresses: a review is addressed by the interrupt's id when the interrupt asks one thing, and
by ``<interrupt id>#<index>`` when it asks several at once (the HITL middleware's batch), which
must all be answered before the run may resume (:class:`Ask.siblings`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from graph import protocols
from graph.decisions import Expire, Feedback, ReviewDecision
from graph.types import REVIEW_QUESTION, PendingReview, ReviewRequest, ToolCallData, ToolInfo

SEPARATOR = "#"
UNKNOWN_TOOL = "interrupt"
"""The name an interrupt of unknown shape is reviewed (and governed by the policy) under."""
BOT_KINDS = ("approve", "edit", "feedback")
"""The answers the bot's card offers (the protocols' ``ignore`` is not one of them)."""


@dataclass(frozen=True)
class Ask:
    """One review the bot shows, and where its answer goes on the server."""

    review: PendingReview
    interrupt_id: str
    """The server's interrupt this review belongs to (the key of the resume map)."""
    index: int
    """Its position among the interrupt's action requests (0 when it asks one thing)."""
    siblings: int
    """How many reviews the interrupt asks at once; all are answered before it resumes."""
    value: Any
    """The interrupt's value, as the server reported it (for the resume translation)."""

    @property
    def address(self) -> str:
        return self.review.interrupt_id


def address(interrupt_id: str, index: int, siblings: int) -> str:
    return interrupt_id if siblings == 1 else f"{interrupt_id}{SEPARATOR}{index}"


def interrupt_of(review_address: str) -> str:
    """The server's interrupt id in a review's address."""
    return review_address.split(SEPARATOR, 1)[0]


def asks_of(
    thread_id: str, interrupts: Sequence[Mapping[str, Any]], messages: Sequence[Mapping[str, Any]]
) -> list[Ask]:
    """Every review the thread's pending interrupts ask for, in the server's order.

    ``messages`` (the thread's, as JSON) say who asked (four-eyes works as in process) and let
    a request that names no tool call id (the HITL middleware's) be matched to the model's call
    by name and arguments, so the bot can read back what followed it (``recap``)."""
    asks: list[Ask] = []
    calls = _last_tool_calls(messages)
    people = _people(messages)
    for interrupt in interrupts:
        interrupt_id = str(interrupt.get("id") or "")
        if not interrupt_id:
            continue
        value = interrupt.get("value")
        requests = requests_of(value, people) or [unknown_request(value, people)]
        for index, request in enumerate(requests):
            request = _with_call_id(request, calls, interrupt_id, index)
            review = PendingReview(
                thread_id=thread_id,
                interrupt_id=address(interrupt_id, index, len(requests)),
                request=request,
            )
            asks.append(Ask(review, interrupt_id, index, len(requests), value))
    return asks


def requests_of(value: Any, people: Sequence[str] = ()) -> list[ReviewRequest]:
    """The reviews an interrupt value asks for, one per action request; empty if no known
    vocabulary fits. Our own graph's value already is a review request (kept as it is)."""
    actions = protocols.pending_actions(value)
    if protocols.classify(value) == "seed":
        request = cast(ReviewRequest, dict(value))
        return [_restricted(request, actions[0].allowed)]
    requests = []
    for action in actions:
        description = shown_description(action.description)
        request = ReviewRequest(
            question=REVIEW_QUESTION,
            tool_call=ToolCallData(
                name=action.name, args=dict(action.args), id=action.tool_call_id or ""
            ),
            tool=ToolInfo(
                name=action.name,
                description=description,
                args_schema=dict(action.args_schema or {}),
            ),
            requested_by=people[-1] if people else None,
            requesters=list(people),
        )
        requests.append(_restricted(request, action.allowed))
    return requests


HITL_DEFAULT_DESCRIPTION = "Tool execution requires approval"
"""How the HITL middleware's default description starts; it goes on to repeat the call's
arguments, which the card shows itself (redacted as the policy says), so only this is kept."""


def shown_description(description: str | None) -> str:
    """An action's description as the card shows it: the middleware's default without the
    arguments it repeats; a graph's own description as written."""
    if not description:
        return ""
    if description.startswith(HITL_DEFAULT_DESCRIPTION):
        return HITL_DEFAULT_DESCRIPTION
    return description


def unknown_request(value: Any, people: Sequence[str] = ()) -> ReviewRequest:
    """An interrupt no vocabulary fits: shown as readable JSON, answered with words only
    (the words are the resume value: the graph asked something only a person can read)."""
    return ReviewRequest(
        question="The agent stopped to ask something I cannot read as a tool call:",
        tool_call=ToolCallData(name=UNKNOWN_TOOL, args={"interrupt": readable(value)}, id=""),
        tool=ToolInfo(
            name=UNKNOWN_TOOL, description="An interrupt of unknown shape", args_schema={}
        ),
        requested_by=people[-1] if people else None,
        requesters=list(people),
        allowed_decisions=["feedback"],
    )


def resume_value(ask: Ask, decisions: Sequence[ReviewDecision]) -> Any:
    """The value that answers ``ask``'s interrupt, given the decision of each of its reviews
    (in order of their index); an interrupt of unknown shape is answered with the words
    alone. :class:`graph.protocols.Unanswerable` if the interrupt does not accept them."""
    if protocols.classify(ask.value) == "unknown":
        [decision] = decisions
        return decision.text if isinstance(decision, Feedback | Expire) else None
    return protocols.resume_value(ask.value, decisions)


def allowed(ask: Ask, decision: ReviewDecision) -> bool:
    """Whether the review accepts this kind of answer. An expiry is words to the agent, or
    ``ignore``/``reject`` where the interrupt allows only that (:func:`protocols.expirable`);
    an approve-only interrupt takes no expiry (only running the call would answer it)."""
    if decision.kind == "expire":
        actions = protocols.pending_actions(ask.value)
        return ask.index >= len(actions) or protocols.expirable(actions[ask.index])
    kinds = ask.review.request.get("allowed_decisions")
    return kinds is None or decision.kind in kinds


def _restricted(request: ReviewRequest, permitted: Collection[str]) -> ReviewRequest:
    kinds = [kind for kind in BOT_KINDS if kind in permitted]
    if len(kinds) == len(BOT_KINDS):
        return request
    return {**request, "allowed_decisions": kinds}


def _people(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Everyone whose message is in the conversation, in order of first appearance (the last
    one named is taken as who asked)."""
    names = (m.get("name") for m in messages if m.get("type") == "human")
    return list(dict.fromkeys(name for name in names if isinstance(name, str) and name))


def readable(value: Any) -> str:
    """An interrupt's value as people can read it (for the ones no vocabulary fits)."""
    try:
        return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _last_tool_calls(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    for message in reversed(messages):
        if message.get("type") == "ai":
            calls = message.get("tool_calls") or []
            return [call for call in calls if isinstance(call, Mapping)]
    return []


def _with_call_id(
    request: ReviewRequest, calls: Sequence[Mapping[str, Any]], interrupt_id: str, index: int
) -> ReviewRequest:
    call = request["tool_call"]
    if call.get("id"):
        return request
    match = next(
        (c for c in calls if c.get("name") == call["name"] and c.get("args") == call["args"]),
        None,
    )
    found = str(match["id"]) if match and match.get("id") else f"{interrupt_id}:{index}"
    return {**request, "tool_call": {**call, "id": found}}
