"""The Edit and Feedback modals: built from the tool's JSON schema, and read back into typed
arguments with per-field errors that Slack shows under the offending input.

Pure functions: no Slack client here, so every shape is validated in tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.mrkdwn import escape, truncate
from graph import ReviewRequest

EDIT_CALLBACK = "review_edit_submit"
FEEDBACK_CALLBACK = "review_feedback_submit"
FEEDBACK_BLOCK = "feedback"
VALUE_ACTION = "value"
ARG_BLOCK_PREFIX = "arg:"
INPUT_LIMIT = 3000
MAX_INPUTS = 95  # a modal holds 100 blocks; keep room for the header blocks
MULTILINE_AT = 60

View = dict[str, Any]
Block = dict[str, Any]


def arg_block_id(name: str) -> str:
    return truncate(f"{ARG_BLOCK_PREFIX}{name}", 255, "")


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def field_kind(schema: Mapping[str, Any]) -> str:
    """One of: enum, boolean, integer, number, string, json (arrays, objects, unions)."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return field_kind({**schema, **options[0], "anyOf": []})
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return "enum"
    kind = schema.get("type")
    if kind in ("boolean", "integer", "number", "string"):
        return str(kind)
    return "json"


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (pydantic puts nested models in ``$defs``)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(root.get("$defs", {}).get(ref.split("/")[-1], {}))
    return schema


def _input_element(kind: str, schema: Mapping[str, Any], value: Any) -> dict[str, Any]:
    element: dict[str, Any] = {"action_id": VALUE_ACTION}
    if kind == "enum":
        options = [
            {"text": _plain(str(v), 75), "value": truncate(str(v), 150, "")}
            for v in schema["enum"][:100]
        ]
        element.update(type="static_select", options=options)
        if value in schema["enum"]:
            element["initial_option"] = options[schema["enum"].index(value)]
        return element
    if kind == "boolean":
        options = [
            {"text": _plain("Yes", 75), "value": "true"},
            {"text": _plain("No", 75), "value": "false"},
        ]
        element.update(type="radio_buttons", options=options)
        if isinstance(value, bool):
            element["initial_option"] = options[0 if value else 1]
        return element
    if kind in ("integer", "number"):
        element.update(type="number_input", is_decimal_allowed=kind == "number")
        if isinstance(value, int | float) and not isinstance(value, bool):
            element["initial_value"] = str(value)
        for key, slack_key in (("minimum", "min_value"), ("maximum", "max_value")):
            if key in schema:
                element[slack_key] = str(schema[key])
        return element
    text = "" if value is None else (value if kind == "string" else _json_text(value))
    element.update(
        type="plain_text_input",
        multiline=kind == "json" or len(text) > MULTILINE_AT or "\n" in text,
    )
    limit = (
        min(int(schema.get("maxLength", INPUT_LIMIT)), INPUT_LIMIT)
        if kind == "string"
        else INPUT_LIMIT
    )
    element["max_length"] = max(limit, 1)
    if text:
        element["initial_value"] = text[:limit]
    if "minLength" in schema and kind == "string":
        element["min_length"] = min(int(schema["minLength"]), limit)
    return element


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def field_names(
    request: ReviewRequest, hidden: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """(arguments that get an input, arguments kept as proposed): redacted ones, and any
    beyond what one modal can hold."""
    properties = request["tool"]["args_schema"].get("properties", {})
    args = request["tool_call"]["args"]
    names = list(properties) + [name for name in args if name not in properties]
    visible = [name for name in names if name not in hidden]
    kept = [name for name in names if name in hidden] + visible[MAX_INPUTS:]
    return visible[:MAX_INPUTS], [name for name in kept if name in args]


def edit_modal(request: ReviewRequest, ref: str, hidden: frozenset[str] = frozenset()) -> View:
    """One typed input per argument, prefilled with what the model proposed.

    ``hidden`` arguments (redacted by policy) get no input and are kept as proposed.
    """
    schema = request["tool"]["args_schema"]
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    args = request["tool_call"]["args"]
    tool_name, description = request["tool_call"]["name"], request["tool"]["description"]
    names, kept = field_names(request, hidden)
    about = f"`{escape(tool_name)}`: {escape(description)}"
    if kept:
        about += f"\nKept as proposed: {escape(', '.join(kept))}"
    blocks: list[Block] = [
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": truncate(about, 2000),
                }
            ],
        }
    ]
    for name in names:
        field = _resolve(properties.get(name, {}), schema)
        kind = field_kind(field)
        hint = field.get("description") or ("JSON" if kind == "json" else "")
        if kind == "json" and hint != "JSON":
            hint = f"{hint} (JSON)"
        block: Block = {
            "type": "input",
            "block_id": arg_block_id(name),
            "label": _plain(str(field.get("title") or name), 2000),
            "element": _input_element(kind, field, args.get(name, field.get("default"))),
            "optional": name not in required or kind == "boolean",
        }
        if hint:
            block["hint"] = _plain(str(hint), 2000)
        blocks.append(block)
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": ref,
        "title": _plain("Edit tool call", 24),
        "submit": _plain("Approve", 24),
        "close": _plain("Cancel", 24),
        "blocks": blocks,
    }


def feedback_modal(request: ReviewRequest, ref: str) -> View:
    tool = escape(request["tool_call"]["name"])
    return {
        "type": "modal",
        "callback_id": FEEDBACK_CALLBACK,
        "private_metadata": ref,
        "title": _plain("Send feedback", 24),
        "submit": _plain("Send", 24),
        "close": _plain("Cancel", 24),
        "blocks": [
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"`{tool}` will *not* run. The agent reads your words "
                        "and may propose again.",
                    }
                ],
            },
            {
                "type": "input",
                "block_id": FEEDBACK_BLOCK,
                "label": _plain("What should the agent do instead?", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": VALUE_ACTION,
                    "multiline": True,
                    "max_length": INPUT_LIMIT,
                    "min_length": 1,
                },
            },
        ],
    }


@dataclass(frozen=True)
class ParsedEdit:
    args: dict[str, Any]
    errors: dict[str, str]


def _submitted(state: Mapping[str, Any], block_id: str) -> Mapping[str, Any]:
    """One input's submitted state; anything not shaped like Slack's counts as empty."""
    block = state.get(block_id) if isinstance(state, Mapping) else None
    element = block.get(VALUE_ACTION) if isinstance(block, Mapping) else None
    return element if isinstance(element, Mapping) else {}


def _read(kind: str, field: Mapping[str, Any], raw: Mapping[str, Any]) -> tuple[bool, Any]:
    """(present, value) for one input; raises ValueError with a message for the person."""
    if kind in ("enum", "boolean"):
        option = raw.get("selected_option")
        if not isinstance(option, Mapping) or not isinstance(option.get("value"), str):
            return False, None
        return True, (option["value"] == "true") if kind == "boolean" else option["value"]
    text = raw.get("value")
    if not isinstance(text, str) or (kind != "string" and not text.strip()):
        return False, None
    if kind == "string":
        return True, str(text)
    if kind in ("integer", "number"):
        return True, _number(kind, str(text).strip())
    try:
        return True, json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Not valid JSON: {error.msg} (line {error.lineno}).") from error


def _number(kind: str, text: str) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError("Enter a number.") from None
    if not math.isfinite(number):
        raise ValueError("Enter a finite number.")
    if kind == "integer":
        if not number.is_integer():
            raise ValueError("Enter a whole number.")
        return int(number)
    return number


def _type_error(kind: str, field: Mapping[str, Any], value: Any) -> str | None:
    expected = field.get("type")
    if kind != "json" or expected not in ("array", "object"):
        return None
    if expected == "array" and not isinstance(value, list):
        return 'Enter a JSON array, e.g. ["a", "b"].'
    if expected == "object" and not isinstance(value, dict):
        return 'Enter a JSON object, e.g. {"key": "value"}.'
    return None


def parse_edit(
    request: ReviewRequest, state_values: Mapping[str, Any], hidden: frozenset[str] = frozenset()
) -> ParsedEdit:
    """Read the submitted modal into arguments; errors are keyed by the input's block id."""
    schema = request["tool"]["args_schema"]
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    proposed = request["tool_call"]["args"]
    names, kept = field_names(request, hidden)
    args: dict[str, Any] = {name: proposed[name] for name in kept}
    errors: dict[str, str] = {}
    for name in names:
        block_id = arg_block_id(name)
        field = _resolve(properties.get(name, {}), schema)
        kind = field_kind(field)
        try:
            present, value = _read(kind, field, _submitted(state_values, block_id))
        except ValueError as error:
            errors[block_id] = str(error)
            continue
        if not present:
            if name in required:
                errors[block_id] = "This field is required."
            continue
        problem = _type_error(kind, field, value)
        if problem:
            errors[block_id] = problem
        else:
            args[name] = value
    return ParsedEdit(args=args, errors=errors)


def parse_feedback(state_values: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    value = _submitted(state_values, FEEDBACK_BLOCK).get("value")
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return None, {FEEDBACK_BLOCK: "Write what the agent should do instead."}
    return text, {}


def error_block_for(
    argument: str | None, request: ReviewRequest, hidden: frozenset[str] = frozenset()
) -> str:
    """Where to show a server-side validation error: the named field, else the first input."""
    names, _ = field_names(request, hidden)
    if argument and argument in names:
        return arg_block_id(argument)
    return arg_block_id(names[0]) if names else FEEDBACK_BLOCK


def plain(text: str) -> str:
    """Modal errors are plain text: drop mrkdwn markers and keep them short."""
    for token in ("*", "`", "_"):
        text = text.replace(token, "")
    return text[:500]
