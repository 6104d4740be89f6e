"""Pure functions for reviews: what a reviewer sees, whether a decision is valid, and applying it.

Kept free of I/O so the same rules serve the graph node, the service that refuses bad input
before anything runs, and the Slack side that validates a modal before resuming.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from graph.digest import args_digest, short
from graph.protocols import ALL_ALLOWED, Unreadable, inbox_config, single_seed_resume
from graph.types import (
    REVIEW_QUESTION,
    DecisionRecord,
    InboxActionRequest,
    ReviewAction,
    ReviewRequest,
    ToolCallData,
    ToolInfo,
)

MAX_DECISION_BYTES = 100_000
ACTIONS: tuple[ReviewAction, ...] = ("continue", "update", "feedback")


class InvalidDecision(ValueError):
    """A decision that must not be applied; ``field`` names the argument at fault, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ArgsChanged(InvalidDecision):
    """The decision is bound (by its digest) to other arguments than the ones that would run:
    nothing runs, and the review is asked again."""

    def __init__(self, approved: str, running: str) -> None:
        super().__init__(
            f"the arguments changed since they were approved ({short(approved)} approved, "
            f"{short(running)} would run); nothing ran, please review again"
        )
        self.approved = approved
        self.running = running


def check_bound(record: DecisionRecord, args: Mapping[str, Any]) -> None:
    """Raise :class:`ArgsChanged` unless ``args`` (what would run) have the digest the decision
    was bound to. A decision without a digest (the seed's wire, a hosted client) is unbound."""
    approved = record.get("digest")
    if not approved or record["action"] == "feedback":
        return
    running = args_digest(args)
    if running != approved:
        raise ArgsChanged(approved, running)


def review_request(
    call: ToolCallData,
    tool: ToolInfo,
    requested_by: str | None,
    requesters: Iterable[str] = (),
    error: InvalidDecision | None = None,
) -> ReviewRequest:
    """The interrupt payload: the seed's question plus everything needed to decide and edit;
    ``error`` says why the previous answer to this review could not be applied."""
    request = ReviewRequest(
        question=REVIEW_QUESTION,
        tool_call=call,
        tool=tool,
        requested_by=requested_by,
        requesters=list(requesters),
    )
    if error is not None:
        request["error"] = str(error)
        if error.field:
            request["error_argument"] = error.field
    request["action_request"] = InboxActionRequest(action=call["name"], args=dict(call["args"]))
    request["config"] = inbox_config(ALL_ALLOWED)
    request["description"] = review_description(tool, error)
    return request


def review_description(tool: ToolInfo, error: InvalidDecision | None = None) -> str:
    """What Agent Inbox shows above the call: the seed's question, what the tool does, and why
    the previous answer was not applied. The arguments are not repeated (they are shown as the
    call's, and a redacted one must not hide in prose)."""
    name = tool.get("display_name") or tool["name"]
    parts = [f"**{REVIEW_QUESTION}** The agent wants to run `{name}`."]
    if tool["description"]:
        parts.append(tool["description"])
    if error is not None:
        parts.append(f"**The previous answer could not be applied:** {error}")
    return "\n\n".join(parts)


def as_seed_decision(decision: Any, tool_name: str) -> Any:
    """Any vocabulary's answer to one call (the seed's, Agent Inbox's ``HumanResponse`` list,
    the middleware's ``decisions``) as the seed's resume value, for :func:`parse_decision` to
    check as strictly as ever. Raises :class:`InvalidDecision` for what is none of them, for
    several answers, and for an edit that names another tool."""
    wire = single_seed_resume(decision, tool_name)
    if isinstance(wire, Unreadable):
        raise InvalidDecision(wire.message)
    return wire


NUL = "\x00"


def nul_path(value: Any, path: str = "") -> str | None:
    """Where a NUL character hides in ``value`` (a key or a string, at any depth), e.g.
    ``text`` or ``users[1]``; None if nowhere. PostgreSQL cannot store NUL in text or JSON, and
    no reviewer can see it."""
    if isinstance(value, str):
        return (path or "(value)") if NUL in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return where
            found = nul_path(item, where)
            if found:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def refuse_nul(value: Any) -> None:
    """Raise :class:`InvalidDecision` naming the argument that carries a NUL character."""
    where = nul_path(value)
    if where is not None:
        field = where.split(".")[0].split("[")[0]
        raise InvalidDecision(
            f"{where}: contains a NUL character (U+0000), which cannot be stored; remove it",
            field=field if isinstance(value, Mapping) else None,
        )


def parse_decision(decision: Any, tool_call_id: str) -> DecisionRecord:
    """Check a resume value's shape (not its arguments) and normalise it into a record."""
    if not isinstance(decision, Mapping):
        raise InvalidDecision("a decision must be an object with an 'action'")
    if len(json.dumps(decision, default=str)) > MAX_DECISION_BYTES:
        raise InvalidDecision(f"a decision may be at most {MAX_DECISION_BYTES // 1000} KB")
    action = decision.get("action")
    if action not in ACTIONS:
        raise InvalidDecision(f"unknown action {action!r}; use one of: {', '.join(ACTIONS)}")
    by = decision.get("by")
    by = str(by) if by is not None else None
    data = decision.get("data")
    digest = decision.get("digest")
    if digest is not None and not isinstance(digest, str):
        raise InvalidDecision("'digest' must be a string (see graph.digest)")
    if action == "continue":
        return DecisionRecord(
            tool_call_id=tool_call_id, action=action, args=None, feedback=None, by=by, digest=digest
        )
    if action == "update":
        if data is None:
            raise InvalidDecision("'update' needs 'data': the new arguments")
        if not isinstance(data, Mapping):
            raise InvalidDecision("'update' data must be an object of arguments")
        refuse_nul(data)
        return DecisionRecord(
            tool_call_id=tool_call_id,
            action=action,
            args=dict(data),
            feedback=None,
            by=by,
            digest=digest,
        )
    if not isinstance(data, str) or not data.strip():
        raise InvalidDecision("'feedback' needs 'data': the words to send back to the agent")
    if NUL in data:
        raise InvalidDecision("the feedback contains a NUL character (U+0000); remove it")
    return DecisionRecord(
        tool_call_id=tool_call_id, action=action, args=None, feedback=data.strip(), by=by
    )


def validate_args(tool: BaseTool, args: Mapping[str, Any]) -> dict[str, Any]:
    """Validate edited arguments against the tool's schema; name the first field at fault.

    Unknown fields are refused too: a typo in an edit must not be silently dropped. So are NUL
    characters anywhere, and required text left blank (empty or only whitespace: a city of
    ``"   "`` is no city).
    """
    refuse_nul(args)
    schema = tool.tool_call_schema
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return _check_against_json_schema(tool)(args)
    editable = set(schema.model_fields)
    unknown = sorted(set(args) - editable)
    if unknown:
        raise InvalidDecision(f"{unknown[0]}: unknown field for {tool.name}", field=unknown[0])
    _refuse_blank(args, [name for name, info in schema.model_fields.items() if info.is_required()])
    # The full schema carries the tool's own validators (the editable subset does not); errors
    # about injected arguments, which no reviewer supplies, are not the reviewer's to fix.
    full = tool.args_schema if isinstance(tool.args_schema, type) else schema
    try:
        full.model_validate(dict(args))  # type: ignore[union-attr]
    except ValidationError as error:
        for problem in error.errors():
            if problem["loc"] and str(problem["loc"][0]) in editable:
                path = ".".join(str(part) for part in problem["loc"])
                message = problem["msg"].removeprefix("Value error, ")
                raise InvalidDecision(f"{path}: {message}", field=str(problem["loc"][0])) from error
    return dict(args)


def _check_against_json_schema(tool: BaseTool) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """For tools described by a plain JSON schema (MCP tools): unknown and missing fields, then
    the whole schema (types, enums, bounds, nested values) with ``jsonschema``."""
    from graph.tools.registry import args_schema

    schema = args_schema(tool)

    def check(args: Mapping[str, Any]) -> dict[str, Any]:
        return validate_json_args(tool.name, schema, args)

    return check


def validate_json_args(
    tool_name: str, schema: Mapping[str, Any], args: Mapping[str, Any]
) -> dict[str, Any]:
    """Edited arguments against a tool known only by its JSON schema (an MCP tool, a tool of a
    graph on LangGraph Server): unknown and missing fields, blank required text, then the whole
    schema with ``jsonschema``; :class:`InvalidDecision` names the first field at fault."""
    refuse_nul(args)
    properties = schema.get("properties", {})
    for name in args:
        if properties and name not in properties:
            raise InvalidDecision(f"{name}: unknown field for {tool_name}", field=name)
    for name in schema.get("required", []):
        if name not in args:
            raise InvalidDecision(f"{name}: Field required", field=name)
    _refuse_blank(args, schema.get("required", []))
    _refuse_schema_errors(schema, args)
    return dict(args)


def _refuse_schema_errors(schema: Mapping[str, Any], args: Mapping[str, Any]) -> None:
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError:
        return  # a server's broken schema: the checks above are all that can be trusted
    errors = sorted(validator_class(schema).iter_errors(dict(args)), key=lambda e: list(e.path))
    if errors:
        error = errors[0]
        path = ".".join(str(part) for part in error.absolute_path)
        field = str(error.absolute_path[0]) if error.absolute_path else None
        raise InvalidDecision(f"{path or '(arguments)'}: {error.message}", field=field)


def _refuse_blank(args: Mapping[str, Any], required: Iterable[str]) -> None:
    """A required text argument must say something: empty or whitespace-only is refused."""
    for name in required:
        value = args.get(name)
        if isinstance(value, str) and not value.strip():
            raise InvalidDecision(f"{name}: must not be blank", field=name)


def apply_edits(message: AIMessage, decisions: Mapping[str, DecisionRecord]) -> AIMessage:
    """Return the AI message with edited arguments, keeping its id and every tool call id.

    Claude reads ``tool_use`` blocks from the content too, so those are edited alongside
    ``tool_calls``; keeping the message id makes LangGraph replace it instead of appending.
    """
    edits = {
        call_id: record["args"]
        for call_id, record in decisions.items()
        if record["action"] == "update" and record["args"] is not None
    }
    if not any(call["id"] in edits for call in message.tool_calls):
        return message
    tool_calls = [
        {**call, "args": edits.get(call["id"] or "", call["args"])} for call in message.tool_calls
    ]
    content: Any = message.content
    if isinstance(content, list):
        content = [
            {**block, "input": edits[block["id"]]}
            if isinstance(block, dict)
            and block.get("type") == "tool_use"
            and block.get("id") in edits
            else block
            for block in content
        ]
    return message.model_copy(update={"tool_calls": tool_calls, "content": content})
