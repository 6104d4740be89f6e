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

from bot.blocks import button_value, shown_name
from bot.mrkdwn import escape, escape_within, has_invisible, to_plain, truncate, visible
from bot.pickers import KINDS as PICKERS
from bot.pickers import picker_element, picker_kind, read_picker
from graph import ReviewRequest

EDIT_CALLBACK = "review_edit_submit"
FEEDBACK_CALLBACK = "review_feedback_submit"
FEEDBACK_BLOCK = "feedback"
VALUE_ACTION = "value"
ARG_BLOCK_PREFIX = "arg:"
REPLACE_BLOCK_PREFIX = "replace:"
REPLACE_OPTION = "replace"
INPUT_LIMIT = 3000
MAX_INPUTS = 95  # a modal holds 100 blocks; keep room for the header blocks
PROTECTED_BLOCKS = 3  # a value kept as proposed: its note, the "replace it" box, the new input
NOTE_PREVIEW = 2400
MULTILINE_AT = 60

View = dict[str, Any]
Block = dict[str, Any]


def arg_block_id(name: str) -> str:
    return truncate(f"{ARG_BLOCK_PREFIX}{name}", 255, "")


def replace_block_id(name: str) -> str:
    return truncate(f"{REPLACE_BLOCK_PREFIX}{name}", 255, "")


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
    if kind in PICKERS:  # Slack's own picker for people, channels and dates (bot.pickers)
        return picker_element(kind, schema, value, VALUE_ACTION)
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
    text = _prefill(kind, value)
    element.update(
        type="plain_text_input",
        multiline=kind == "json" or len(text) > MULTILINE_AT or "\n" in text,
    )
    limit = _limit(kind, schema)
    element["max_length"] = limit
    if text:
        element["initial_value"] = text  # whole: protected values never get here
    if "minLength" in schema and kind == "string":
        element["min_length"] = min(int(schema["minLength"]), limit)
    return element


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _prefill(kind: str, value: Any) -> str:
    """The text an input would start with for ``value``."""
    if value is None:
        return ""
    return value if kind == "string" and isinstance(value, str) else _json_text(value)


def _limit(kind: str, schema: Mapping[str, Any]) -> int:
    if kind == "string":
        return max(min(int(schema.get("maxLength", INPUT_LIMIT)), INPUT_LIMIT), 1)
    return INPUT_LIMIT


def protected_reason(kind: str, schema: Mapping[str, Any], value: Any) -> str | None:
    """Why a proposed value cannot be put in an input unchanged, or None if it can.

    An input holds at most its limit, and Slack's client may normalise characters a person
    cannot see; either would change the value without anyone choosing to. Such a value is
    kept exactly as proposed unless the person ticks "Replace it" and types a new one.
    """
    if kind not in ("string", "json") or value is None:
        return None
    text = _prefill(kind, value)
    limit = _limit(kind, schema)
    if len(text) > limit:
        return f"Too long to edit here ({len(text):,} characters; an input holds {limit:,})"
    if has_invisible(text):
        return "Contains invisible or direction-changing characters (shown as ⟨U+…⟩)"
    return None


@dataclass(frozen=True)
class Field:
    """One argument as the Edit form shows it."""

    name: str
    schema: Mapping[str, Any]
    kind: str
    value: Any
    protected: str | None  # why it is kept as proposed unless replaced on purpose

    @property
    def blocks_needed(self) -> int:
        return PROTECTED_BLOCKS if self.protected else 1


def form_field(request: ReviewRequest, name: str) -> Field:
    schema = request["tool"]["args_schema"]
    field = _resolve(schema.get("properties", {}).get(name, {}), schema)
    args = request["tool_call"]["args"]
    value = args.get(name, field.get("default"))
    kind = picker_kind(field, value) or field_kind(field)
    protected = protected_reason(kind, field, value) if name in args else None
    return Field(name, field, kind, value, protected)


def field_names(
    request: ReviewRequest, hidden: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """(arguments that get an input, arguments kept as proposed): redacted ones, and any
    beyond what one modal can hold (a protected value takes `PROTECTED_BLOCKS` blocks)."""
    properties = request["tool"]["args_schema"].get("properties", {})
    args = request["tool_call"]["args"]
    names = list(properties) + [name for name in args if name not in properties]
    shown: list[str] = []
    used = 0
    for name in (name for name in names if name not in hidden):
        used += form_field(request, name).blocks_needed
        if used > MAX_INPUTS:
            break
        shown.append(name)
    kept = [name for name in names if name in hidden or (name not in shown)]
    return shown, [name for name in kept if name in args]


def edit_modal(
    request: ReviewRequest, ref: str, hidden: frozenset[str] = frozenset(), *, version: int = 0
) -> View:
    """One typed input per argument, prefilled with what the model proposed.

    ``hidden`` arguments (redacted by policy) get no input and are kept as proposed.
    The form is bound to the proposal it shows (``version``, with the ref in its metadata):
    submitted after the proposal changed, it is refused, since what it kept as proposed
    (and every value it showed) may no longer be what it would run.
    """
    schema = request["tool"]["args_schema"]
    required = set(schema.get("required", []))
    tool_name, description = shown_name(request), request["tool"]["description"]
    names, kept = field_names(request, hidden)
    about = f"`{escape(tool_name)}`: {escape(description)}"
    if kept:
        about += f"\nKept as proposed: {escape(visible(', '.join(kept)))}"
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
        blocks.extend(field_blocks(form_field(request, name), name in required))
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": button_value(ref, version),
        "title": _plain("Edit tool call", 24),
        "submit": _plain("Approve", 24),
        "close": _plain("Cancel", 24),
        "blocks": blocks,
    }


def _label(field: Field) -> str:
    return visible(str(field.schema.get("title") or field.name))


def _hint(field: Field) -> str:
    hint = str(field.schema.get("description") or ("JSON" if field.kind == "json" else ""))
    return f"{hint} (JSON)" if field.kind == "json" and hint != "JSON" else hint


def field_blocks(field: Field, required: bool) -> list[Block]:
    """The input for one argument, prefilled with the whole proposed value; or, for a value
    no input can hold unchanged, a read-only note plus an opt-in "Replace it" and an empty
    input, so the value runs exactly as proposed unless the person replaces it on purpose."""
    if field.protected:
        return protected_blocks(field, required)
    block: Block = {
        "type": "input",
        "block_id": arg_block_id(field.name),
        "label": _plain(_label(field), 2000),
        "element": _input_element(field.kind, field.schema, field.value),
        "optional": not required or field.kind == "boolean",
    }
    hint = _hint(field)
    if hint:
        block["hint"] = _plain(hint, 2000)
    return [block]


def protected_blocks(field: Field, required: bool) -> list[Block]:
    text = visible(_prefill(field.kind, field.value)).replace("```", "ˋˋˋ")
    preview, more = escape_within(text, NOTE_PREVIEW)
    tail = f"\n_…{more:,} more characters not shown_" if more > 0 else ""
    label = truncate(_label(field), 150)
    note = (
        f"*{escape(label)}*: {escape(str(field.protected))}. "
        f"*Kept exactly as proposed* unless you tick “Replace it”.\n```{preview}```{tail}"
    )
    new: Block = {
        "type": "input",
        "block_id": arg_block_id(field.name),
        "label": _plain(f"New {label}", 2000),
        "element": {
            "type": "plain_text_input",
            "action_id": VALUE_ACTION,
            "multiline": True,
            "max_length": _limit(field.kind, field.schema),
        },
        "optional": True,
        "hint": _plain(
            "Used only if “Replace it” is ticked." + (f" {_hint(field)}" if _hint(field) else ""),
            2000,
        ),
    }
    replace: Block = {
        "type": "input",
        "block_id": replace_block_id(field.name),
        "label": _plain(f"Replace {label}?", 2000),
        "optional": True,
        "element": {
            "type": "checkboxes",
            "action_id": VALUE_ACTION,
            "options": [
                {"text": _plain("Replace it with the text below", 75), "value": REPLACE_OPTION}
            ],
        },
    }
    return [{"type": "section", "text": {"type": "mrkdwn", "text": note}}, replace, new]


def feedback_modal(request: ReviewRequest, ref: str) -> View:
    tool = escape(shown_name(request))
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


def _replacing(state: Mapping[str, Any], name: str) -> bool:
    chosen = _submitted(state, replace_block_id(name)).get("selected_options")
    return isinstance(chosen, list) and any(
        isinstance(option, Mapping) and option.get("value") == REPLACE_OPTION for option in chosen
    )


def _typed(state: Mapping[str, Any], block_id: str) -> bool:
    text = _submitted(state, block_id).get("value")
    return isinstance(text, str) and bool(text.strip())


def parse_edit(
    request: ReviewRequest, state_values: Mapping[str, Any], hidden: frozenset[str] = frozenset()
) -> ParsedEdit:
    """Read the submitted modal into arguments; errors are keyed by the input's block id."""
    required = set(request["tool"]["args_schema"].get("required", []))
    proposed = request["tool_call"]["args"]
    names, kept = field_names(request, hidden)
    args: dict[str, Any] = {name: proposed[name] for name in kept}
    errors: dict[str, str] = {}
    for name in names:
        block_id = arg_block_id(name)
        form = form_field(request, name)
        field, kind = form.schema, form.kind
        if form.protected and not _replacing(state_values, name):
            args[name] = proposed[name]  # exactly as proposed: nobody chose to change it
            if _typed(state_values, block_id):
                errors[block_id] = (
                    "Tick “Replace it” to use this text, or clear it to keep the proposed value."
                )
            continue
        raw = _submitted(state_values, block_id)
        try:
            if kind in PICKERS:
                present, value = read_picker(kind, field, raw, form.value)
            else:
                present, value = _read(kind, field, raw)
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


def plain(text: str, names: Mapping[str, str] | None = None) -> str:
    """Modal errors are plain text: mrkdwn turned into words (`bot.mrkdwn.to_plain`, people
    named from ``names``, user id -> name), kept short."""
    return truncate(to_plain(text, names), 500)
