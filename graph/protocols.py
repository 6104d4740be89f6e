"""LangGraph's three human-in-the-loop vocabularies, read and written as pure functions.

An agent that pauses for a person says so with an ``interrupt()`` value, and is answered with a
``Command(resume=...)`` value. Three shapes are in use, and this module speaks all three:

``seed``
    This project's graph (and LangGraph's "review tool calls" how-to): the value carries
    ``question``, ``tool_call {name, args, id}`` and ``tool``; the answer is
    ``{"action": "continue" | "update" | "feedback", "data": ...}`` (``graph.decisions.to_wire``).
    Our graph's value also carries the Agent Inbox fields below, so Agent Inbox renders it.
``agent_inbox``
    Agent Inbox's ``HumanInterrupt`` (``langgraph.prebuilt.interrupt``, moved to
    ``langchain.agents.interrupt``): ``{action_request: {action, args}, config: {allow_accept,
    allow_edit, allow_respond, allow_ignore}, description}``, one or a list; answered with a list
    of ``HumanResponse`` ``{"type": "accept" | "edit" | "response" | "ignore", "args": ...}``, one
    per request, where an edit's ``args`` is an ``ActionRequest`` ``{action, args}`` and a
    response's is the text. Agent Inbox itself sends a list of one.
``hitl``
    LangChain v1 ``HumanInTheLoopMiddleware`` (batched mode): ``HITLRequest {action_requests:
    [{name, args, description}], review_configs: [{action_name, allowed_decisions,
    args_schema?}]}``; answered with ``{"decisions": [...]}``, one decision per action request,
    in order: ``{"type": "approve"}``, ``{"type": "edit", "edited_action": {"name", "args"}}``,
    ``{"type": "reject", "message"?: str}`` or ``{"type": "respond", "message": str}``.
``hitl_call``
    The same middleware in ``per_call`` mode: ``ToolApprovalRequest {type: "tool_approval",
    tool_call_id, name, args, description}``, answered with one bare decision.

Our side speaks the typed records of :mod:`graph.decisions` (``Approve``, ``Edit``,
``Feedback``, ``Expire``) plus :class:`Dismiss`, which only these vocabularies need: the call
does not run and the agent is told nothing but that (Agent Inbox's ``ignore``, a ``reject``
without a message).

How a decision maps (writing; reading is the inverse, and also accepts what Agent Inbox sends
to a middleware agent: ``reject`` with ``args`` for the message, ``edit`` with ``args`` for the
action, and ``ignore``):

==========  ==============================  ===================  =============================
ours        seed                            Agent Inbox          HITL middleware
==========  ==============================  ===================  =============================
Approve     continue                        accept               approve
Edit        update + data (args)            edit {action, args}  edit {edited_action}
Feedback    feedback + data (text)          response (text)      reject + message (or respond)
Expire      feedback + data (text)          response or ignore   reject + message
Dismiss     feedback + :data:`DISMISSED`    ignore               reject (no message)
==========  ==============================  ===================  =============================

An expiry never runs the call: it is answered with words where the interrupt takes them,
with ``ignore`` where only that is allowed (Agent Inbox), and not at all where only approving
is allowed (:func:`expirable`): that interrupt is left waiting.

Every function is total: what cannot be read or answered is a typed refusal
(:class:`Unreadable`, :class:`Unanswerable`), never an exception. Nothing here validates a
decision's arguments against a tool: that stays with ``graph.review``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from graph.decisions import (
    EXPIRY_ACTOR,
    Approve,
    DecisionKind,
    Edit,
    Expire,
    Feedback,
    ReviewDecision,
    to_wire,
)
from graph.types import InboxActionRequest, InboxConfig

Shape = Literal["seed", "agent_inbox", "hitl", "hitl_call", "unknown"]
SHAPES: tuple[Shape, ...] = ("seed", "agent_inbox", "hitl", "hitl_call", "unknown")

Allowed = Literal["approve", "edit", "feedback", "ignore"]
"""What a reviewer may answer one action request with (``feedback`` covers Agent Inbox's
``response`` and the middleware's ``reject``/``respond``; ``ignore`` is :class:`Dismiss`)."""
ALL_ALLOWED: frozenset[Allowed] = frozenset(("approve", "edit", "feedback", "ignore"))

RETRY_NOTE = "Do not retry it unless asked."
DISMISSED = f"The reviewer dismissed this call without comment. {RETRY_NOTE}"
"""The seed's wording of a :class:`Dismiss` (the seed has no word for it): feedback saying so,
which our graph recognises and reads back as a dismissal."""

MAX_RESUME_BYTES = 100_000
"""The largest resume value read at all (as JSON); the seed's own limit, for every shape."""


@dataclass(frozen=True)
class Dismiss:
    """Do not run the call, and say nothing more than that (``ignore``; ``reject`` alone)."""

    by: str | None = None
    kind: Literal["dismiss"] = field(default="dismiss", init=False)


ProtocolDecision = ReviewDecision | Dismiss
"""Every decision these vocabularies can carry: ours, plus :class:`Dismiss`."""


@dataclass(frozen=True)
class PendingAction:
    """One action a reviewer must decide, whatever shape asked for it.

    ``allowed`` is what the interrupt permits; ``tool_call_id`` and ``args_schema`` are given
    when the shape carries them (seed: both; ``hitl_call``: the id; ``hitl``: the schema if the
    review config has one)."""

    name: str
    args: Mapping[str, Any]
    description: str | None
    allowed: frozenset[Allowed]
    tool_call_id: str | None = None
    args_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    """One decision read from a resume value; ``action`` is the tool an edit names, when its
    vocabulary carries one (Agent Inbox, the middleware), so a caller can refuse a switch."""

    decision: ProtocolDecision
    action: str | None = None


@dataclass(frozen=True)
class ParsedResume:
    """A resume value read: its vocabulary and its answers, in order."""

    shape: Shape
    answers: tuple[Answer, ...]


@dataclass(frozen=True)
class Unreadable:
    """A resume value that is none of the vocabularies (or breaks one), and why."""

    message: str


@dataclass(frozen=True)
class Unanswerable:
    """Decisions that cannot be written for this interrupt (wrong count, not allowed, unknown
    shape), and why; nothing was sent."""

    message: str


# ---------------------------------------------------------------------------------------------
# Reading interrupt values


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, Mapping)


def is_seed_request(value: Any) -> bool:
    """The seed's review: ``question`` and a ``tool_call`` with a name and arguments."""
    if not _is_mapping(value) or not isinstance(value.get("question"), str):
        return False
    call = value.get("tool_call")
    return _is_mapping(call) and isinstance(call.get("name"), str) and _is_mapping(call.get("args"))


def is_human_interrupt(value: Any) -> bool:
    """Agent Inbox's own check (``isAgentInboxInterruptSchema``): an ``action_request`` object
    with an ``action``, and a ``config`` object; for a list, its first item. Stricter than it:
    ``action`` must be text and ``args`` an object (that is what is shown), and every item of a
    list must pass."""
    if isinstance(value, list):
        return bool(value) and all(is_human_interrupt(item) for item in value)
    if not _is_mapping(value):
        return False
    request, config = value.get("action_request"), value.get("config")
    return (
        _is_mapping(request)
        and isinstance(request.get("action"), str)
        and _is_mapping(request.get("args", {}))
        and _is_mapping(config)
    )


def is_hitl_request(value: Any) -> bool:
    """The middleware's ``HITLRequest``: a non-empty ``action_requests`` list of ``{name,
    args}`` objects and a ``review_configs`` list."""
    if not _is_mapping(value):
        return False
    requests, configs = value.get("action_requests"), value.get("review_configs")
    return (
        isinstance(requests, list)
        and bool(requests)
        and all(
            _is_mapping(r) and isinstance(r.get("name"), str) and _is_mapping(r.get("args"))
            for r in requests
        )
        and isinstance(configs, list)
        and all(_is_mapping(c) for c in configs)
    )


def is_tool_approval(value: Any) -> bool:
    """The middleware's per-call ``ToolApprovalRequest``."""
    return (
        _is_mapping(value)
        and value.get("type") == "tool_approval"
        and isinstance(value.get("name"), str)
        and _is_mapping(value.get("args"))
    )


def classify(value: Any) -> Shape:
    """Which vocabulary an interrupt value speaks. Our graph's value is ``seed`` although it
    also carries Agent Inbox's fields: the seed's answer is the richer one (it says who)."""
    if is_seed_request(value):
        return "seed"
    if is_hitl_request(value):
        return "hitl"
    if is_tool_approval(value):
        return "hitl_call"
    if is_human_interrupt(value):
        return "agent_inbox"
    return "unknown"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _inbox_allowed(config: Mapping[str, Any]) -> frozenset[Allowed]:
    flags: dict[str, Allowed] = {
        "allow_accept": "approve",
        "allow_edit": "edit",
        "allow_respond": "feedback",
        "allow_ignore": "ignore",
    }
    return frozenset(word for flag, word in flags.items() if config.get(flag) is True)


HITL_ALLOWED: Mapping[str, frozenset[Allowed]] = {
    "approve": frozenset(("approve",)),
    "edit": frozenset(("edit",)),
    "reject": frozenset(("feedback", "ignore")),
    "respond": frozenset(("feedback",)),
}


def _hitl_allowed(config: Mapping[str, Any] | None) -> frozenset[Allowed]:
    words = config.get("allowed_decisions") if config else None
    if not isinstance(words, list):
        return frozenset()
    allowed: set[Allowed] = set()
    for word in words:
        allowed |= HITL_ALLOWED.get(str(word), frozenset())
    return frozenset(allowed)


def _hitl_configs(value: Mapping[str, Any]) -> list[Mapping[str, Any] | None]:
    """The review config of each action request: by position when there is one per request
    (as the middleware writes them), else the first naming the action."""
    requests: list[Mapping[str, Any]] = value["action_requests"]
    configs: list[Mapping[str, Any]] = value.get("review_configs") or []
    if len(configs) == len(requests) and all(
        c.get("action_name") in (None, r["name"]) for c, r in zip(configs, requests, strict=True)
    ):
        return list(configs)
    by_name: dict[str, Mapping[str, Any]] = {}
    for config in configs:
        if isinstance(config.get("action_name"), str):
            by_name.setdefault(config["action_name"], config)
    return [by_name.get(r["name"]) for r in requests]


def pending_actions(value: Any) -> tuple[PendingAction, ...]:
    """The action requests a reviewer must decide, in order; empty for an unknown shape."""
    shape = classify(value)
    if shape == "seed":
        call, tool = value["tool_call"], value.get("tool")
        tool = tool if _is_mapping(tool) else {}
        schema = tool.get("args_schema")
        return (
            PendingAction(
                name=call["name"],
                args=call["args"],
                description=_text(value.get("description")) or _text(tool.get("description")),
                allowed=_inbox_allowed(value["config"])
                if _is_mapping(value.get("config"))
                else ALL_ALLOWED,
                tool_call_id=_text(call.get("id")),
                args_schema=schema if _is_mapping(schema) else None,
            ),
        )
    if shape == "hitl":
        configs = _hitl_configs(value)
        return tuple(
            PendingAction(
                name=request["name"],
                args=request["args"],
                description=_text(request.get("description")),
                allowed=_hitl_allowed(config),
                args_schema=config.get("args_schema")
                if config and _is_mapping(config.get("args_schema"))
                else None,
            )
            for request, config in zip(value["action_requests"], configs, strict=True)
        )
    if shape == "hitl_call":
        return (
            PendingAction(
                name=value["name"],
                args=value["args"],
                description=_text(value.get("description")),
                allowed=ALL_ALLOWED,
                tool_call_id=_text(value.get("tool_call_id")),
            ),
        )
    if shape == "agent_inbox":
        items = value if isinstance(value, list) else [value]
        return tuple(
            PendingAction(
                name=item["action_request"]["action"],
                args=item["action_request"].get("args", {}),
                description=_text(item.get("description")),
                allowed=_inbox_allowed(item["config"]),
            )
            for item in items
        )
    return ()


# ---------------------------------------------------------------------------------------------
# Writing resume values


def expirable(action: PendingAction) -> bool:
    """Whether an expiry can answer ``action`` without running it: with words (``feedback``)
    or, failing that, with ``ignore`` (Agent Inbox; the middleware's ``reject`` grants both).
    An action that allows neither (approve only) cannot be expired: only running the call
    answers it, and an expiry never runs the call, so it is :class:`Unanswerable` and the
    caller leaves the interrupt waiting."""
    return bool(action.allowed & {"feedback", "ignore"})


def needs(decision: ProtocolDecision) -> Allowed:
    """Which permission a decision needs (``Expire`` is words to the model: feedback, or
    ``ignore`` where words are not allowed; see :func:`expirable`)."""
    needed: dict[DecisionKind | Literal["dismiss"], Allowed] = {
        "approve": "approve",
        "edit": "edit",
        "feedback": "feedback",
        "expire": "feedback",
        "dismiss": "ignore",
    }
    return needed[decision.kind]


def _words(decision: ProtocolDecision) -> str | None:
    return decision.text if isinstance(decision, Feedback | Expire) else None


def seed_resume(decision: ProtocolDecision) -> dict[str, Any]:
    """The seed's resume value; a dismissal becomes feedback saying so (the seed has no word)."""
    if isinstance(decision, Dismiss):
        wire: dict[str, Any] = {"action": "feedback", "data": DISMISSED}
        if decision.by:
            wire["by"] = decision.by
        return wire
    return dict(to_wire(decision))


def inbox_response(decision: ProtocolDecision, action: PendingAction) -> dict[str, Any]:
    """One Agent Inbox ``HumanResponse`` for ``action``."""
    if isinstance(decision, Approve):
        return {"type": "accept", "args": None}
    if isinstance(decision, Edit):
        return {"type": "edit", "args": {"action": action.name, "args": dict(decision.args)}}
    if isinstance(decision, Dismiss):
        return {"type": "ignore", "args": None}
    if "feedback" not in action.allowed and "ignore" in action.allowed:
        return {"type": "ignore", "args": None}  # an expiry where only ignoring is allowed
    return {"type": "response", "args": _words(decision)}


def hitl_decision(
    decision: ProtocolDecision, action: PendingAction, allowed_words: Sequence[str] = ("reject",)
) -> dict[str, Any]:
    """One middleware decision for ``action``; words go as ``reject`` with a message unless
    only ``respond`` is allowed."""
    if isinstance(decision, Approve):
        return {"type": "approve"}
    if isinstance(decision, Edit):
        return {"type": "edit", "edited_action": {"name": action.name, "args": dict(decision.args)}}
    if isinstance(decision, Dismiss):
        return {"type": "reject"}
    words = _words(decision) or ""
    if "reject" not in allowed_words and "respond" in allowed_words:
        return {"type": "respond", "message": words}
    return {"type": "reject", "message": words}


def _refusal(actions: Sequence[PendingAction], decisions: Sequence[ProtocolDecision]) -> str | None:
    if len(decisions) != len(actions):
        return (
            f"this interrupt asks about {len(actions)} action(s); "
            f"{len(decisions)} decision(s) were given (one per action, in order)"
        )
    for index, (action, decision) in enumerate(zip(actions, decisions, strict=True)):
        permitted = (
            expirable(action) if isinstance(decision, Expire) else needs(decision) in action.allowed
        )
        if not permitted:
            allowed = ", ".join(sorted(action.allowed)) or "nothing"
            return (
                f"action {index + 1} ({action.name}) does not allow {decision.kind}; "
                f"it allows: {allowed}"
            )
    return None


def resume_value(value: Any, decisions: Sequence[ProtocolDecision]) -> Any | Unanswerable:
    """The ``Command(resume=...)`` value that answers interrupt ``value`` with ``decisions``,
    one per :func:`pending_actions` entry, in order (the middleware answers all together)."""
    shape = classify(value)
    actions = pending_actions(value)
    if shape == "unknown":
        return Unanswerable("the interrupt is none of the known review shapes")
    refusal = _refusal(actions, decisions)
    if refusal is not None:
        return Unanswerable(refusal)
    if shape == "seed":
        return seed_resume(decisions[0])
    if shape == "agent_inbox":
        return [inbox_response(d, a) for d, a in zip(decisions, actions, strict=True)]
    if shape == "hitl_call":
        return hitl_decision(decisions[0], actions[0], ("reject", "respond"))
    configs = _hitl_configs(value)
    return {
        "decisions": [
            hitl_decision(d, a, (c or {}).get("allowed_decisions") or ())
            for d, a, c in zip(decisions, actions, configs, strict=True)
        ]
    }


# ---------------------------------------------------------------------------------------------
# Reading resume values


def _too_big(resume: Any) -> bool:
    try:
        return len(json.dumps(resume, default=str)) > MAX_RESUME_BYTES
    except (TypeError, ValueError):
        return True  # e.g. a circular structure: nothing a client sends


def _by(item: Mapping[str, Any]) -> str | None:
    by = item.get("by")
    return by if isinstance(by, str) and by else None


def _seed_answer(resume: Mapping[str, Any]) -> Answer | Unreadable:
    action, data, by = resume.get("action"), resume.get("data"), _by(resume)
    if action == "continue":
        return Answer(Approve(by))
    if action == "update":
        if not _is_mapping(data):
            return Unreadable("'update' needs 'data': an object of the new arguments")
        return Answer(Edit(dict(data), by))
    if action == "feedback":
        if not isinstance(data, str):
            return Unreadable("'feedback' needs 'data': the words to send back to the agent")
        if data == DISMISSED:
            return Answer(Dismiss(by))
        return Answer(Expire(data) if by == EXPIRY_ACTOR else Feedback(data, by))
    return Unreadable(f"unknown action {action!r}; use one of: continue, update, feedback")


def _edited(action: Any) -> Answer | Unreadable:
    """An edit's action, as Agent Inbox (``{action, args}``) or the middleware (``{name,
    args}``) writes it."""
    if not _is_mapping(action):
        return Unreadable("an 'edit' needs the edited action: an object with its 'args'")
    name = action.get("action", action.get("name"))
    args = action.get("args")
    if not _is_mapping(args):
        return Unreadable("an 'edit' needs 'args': an object of the new arguments")
    if name is not None and not isinstance(name, str):
        return Unreadable("an edit's action name must be text")
    return Answer(Edit(dict(args)), name)


def _message(item: Mapping[str, Any], *keys: str) -> str | Unreadable | None:
    for key in keys:
        if item.get(key) is not None:
            words = item[key]
            return words if isinstance(words, str) else Unreadable(f"'{key}' must be text")
    return None


def _typed_answer(item: Any) -> Answer | Unreadable:
    """One ``{"type": ...}`` item: an Agent Inbox response or a middleware decision."""
    if not _is_mapping(item):
        return Unreadable("each response must be an object with a 'type'")
    kind, by = item.get("type"), _by(item)
    if kind in ("accept", "approve"):
        return Answer(Approve(by))
    if kind == "edit":
        edited = _edited(item.get("edited_action", item.get("args")))
        if isinstance(edited, Answer) and isinstance(edited.decision, Edit):
            return Answer(Edit(edited.decision.args, by), edited.action)
        return edited
    if kind == "ignore":
        return Answer(Dismiss(by))
    if kind in ("response", "reject", "respond"):
        words = _message(item, "message", "args")
        if isinstance(words, Unreadable):
            return words
        if words is None or not words.strip():
            if kind == "reject":
                return Answer(Dismiss(by))
            return Unreadable(f"'{kind}' needs the words to send back to the agent")
        return Answer(Feedback(words, by))
    return Unreadable(
        f"unknown response type {kind!r}; use one of: accept, edit, response, ignore "
        "(Agent Inbox) or approve, edit, reject, respond (HumanInTheLoopMiddleware)"
    )


def _answers(items: Sequence[Any], shape: Shape) -> ParsedResume | Unreadable:
    answers: list[Answer] = []
    for item in items:
        answer = _typed_answer(item)
        if isinstance(answer, Unreadable):
            return answer
        answers.append(answer)
    return ParsedResume(shape, tuple(answers))


def parse_resume(resume: Any) -> ParsedResume | Unreadable:
    """Read any of the vocabularies' resume values into typed answers, in order.

    ``{"action": ...}`` is the seed's; ``{"decisions": [...]}`` the middleware's; a list of
    ``{"type": ...}`` (or one bare) Agent Inbox's, or a per-call middleware decision."""
    if _too_big(resume):
        return Unreadable(f"a decision may be at most {MAX_RESUME_BYTES // 1000} KB")
    if _is_mapping(resume) and "action" in resume:
        seed = _seed_answer(resume)
        return seed if isinstance(seed, Unreadable) else ParsedResume("seed", (seed,))
    if _is_mapping(resume) and "decisions" in resume:
        decisions = resume["decisions"]
        if not isinstance(decisions, list) or not decisions:
            return Unreadable("'decisions' must be a non-empty list, one per action request")
        return _answers(decisions, "hitl")
    if isinstance(resume, list):
        if not resume:
            return Unreadable("an empty list of responses decides nothing")
        return _answers(resume, "agent_inbox")
    if _is_mapping(resume) and "type" in resume:
        kind = resume.get("type")
        shape: Shape = (
            "hitl_call" if isinstance(kind, str) and kind in HITL_ALLOWED else "agent_inbox"
        )
        return _answers([resume], shape)
    return Unreadable(
        "a decision must be the seed's {'action': ...}, Agent Inbox's [{'type': ...}] or the "
        "middleware's {'decisions': [...]}"
    )


def single_seed_resume(resume: Any, tool_name: str) -> dict[str, Any] | Unreadable:
    """For a graph that asks about one call per interrupt (ours): any vocabulary's answer as
    the seed's resume value, which ``graph.review.parse_decision`` then validates as strictly
    as ever. Refused: several answers, and an edit that names another tool."""
    if _is_mapping(resume) and "action" in resume:
        return dict(resume)  # as sent: parse_decision reads it with every rule it has
    parsed = parse_resume(resume)
    if isinstance(parsed, Unreadable):
        return parsed
    if len(parsed.answers) != 1:
        return Unreadable(
            f"this review asks about one call; {len(parsed.answers)} answers were given"
        )
    [answer] = parsed.answers
    if answer.action is not None and answer.action != tool_name:
        return Unreadable(
            f"an edit cannot change the tool: this review is about {tool_name}, "
            f"the edit names {answer.action}"
        )
    return seed_resume(answer.decision)


def inbox_config(allowed: frozenset[Allowed]) -> InboxConfig:
    """Agent Inbox's ``HumanInterruptConfig`` granting ``allowed``."""
    return InboxConfig(
        allow_accept="approve" in allowed,
        allow_edit="edit" in allowed,
        allow_respond="feedback" in allowed,
        allow_ignore="ignore" in allowed,
    )


def inbox_fields(
    name: str, args: Mapping[str, Any], description: str, allowed: frozenset[Allowed]
) -> dict[str, Any]:
    """Agent Inbox's ``HumanInterrupt`` fields for one call, to add to an interrupt value."""
    return {
        "action_request": InboxActionRequest(action=name, args=dict(args)),
        "config": inbox_config(allowed),
        "description": description,
    }
