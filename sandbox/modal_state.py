"""Turning what a person typed into a modal into Slack's `view.state.values`.

Slack's client does this (and the required-field check) before the app ever
sees a view_submission, so the sandbox must too.
"""

from __future__ import annotations

from typing import Any

from sandbox.workspace import Json

REQUIRED = "Please complete this required field."
NOT_A_NUMBER = "Please enter a valid number."

SINGLE_KEYS = {
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "datetimepicker": ("selected_date_time", "initial_date_time"),
    "users_select": ("selected_user", "initial_user"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "channels_select": ("selected_channel", "initial_channel"),
    "multi_users_select": ("selected_users", "initial_users"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
}
TEXT_TYPES = {"plain_text_input", "email_text_input", "url_text_input", "number_input"}
ONE_OPTION = {"static_select", "radio_buttons", "external_select"}
MANY_OPTIONS = {"checkboxes", "multi_static_select", "multi_external_select"}


def _options(element: Json) -> list[Json]:
    opts = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        opts += group.get("options") or []
    return opts


def _pick(element: Json, wanted: list[str]) -> list[Json]:
    by_value = {o.get("value"): o for o in _options(element)}
    return [by_value[v] for v in wanted if v in by_value]


def element_state(element: Json, value: Any, given: bool) -> tuple[Json, bool]:
    """(state entry, is_empty) for one input element."""
    kind = str(element.get("type"))
    entry: Json = {"type": kind}
    if kind in TEXT_TYPES:
        raw = value if given else element.get("initial_value")
        entry["value"] = str(raw) if raw not in (None, "") else None
        return entry, entry["value"] is None
    if kind in ONE_OPTION:
        chosen = _pick(element, [str(value)]) if given and value not in (None, "") else []
        initial = element.get("initial_option")
        entry["selected_option"] = chosen[0] if chosen else (None if given else initial)
        return entry, entry["selected_option"] is None
    if kind in MANY_OPTIONS:
        values = value if isinstance(value, list) else ([value] if value else [])
        chosen = _pick(element, [str(v) for v in values])
        entry["selected_options"] = chosen if given else element.get("initial_options", [])
        return entry, not entry["selected_options"]
    key, initial_key = SINGLE_KEYS.get(kind, ("value", "initial_value"))
    entry[key] = _picked(kind, value) if given else element.get(initial_key)
    return entry, entry[key] in (None, "", [])


def _picked(kind: str, value: Any) -> Any:
    """A picker's value as Slack sends it: a list for the multi_ pickers, Unix seconds (an
    integer) for a datetimepicker, a string otherwise."""
    if kind.startswith("multi_"):
        items = value if isinstance(value, list) else [value]
        return [str(item) for item in items if item not in (None, "")]
    if value in (None, ""):
        return None
    if kind == "datetimepicker":
        try:
            return int(value)
        except (TypeError, ValueError):
            return value  # not a moment: passed on, so the app's own check is exercised
    return str(value)


def _number_error(element: Json, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        number = float(value) if element.get("is_decimal_allowed") else int(value)
    except ValueError:
        return NOT_A_NUMBER
    low, high = element.get("min_value"), element.get("max_value")
    if low is not None and number < float(low):
        return f"Please enter a number of at least {low}."
    if high is not None and number > float(high):
        return f"Please enter a number of at most {high}."
    return None


def build_state(blocks: list[Any], values: dict[str, Any]) -> tuple[Json, dict[str, str]]:
    """`{"values": ...}` for the modal plus client-side errors by block_id.

    `values` is keyed by block_id (or by action_id, for convenience).
    """
    state: dict[str, Json] = {}
    errors: dict[str, str] = {}
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") != "input":
            continue
        element = block.get("element") or {}
        block_id, action_id = str(block.get("block_id")), str(element.get("action_id"))
        key = block_id if block_id in values else action_id
        entry, empty = element_state(element, values.get(key), key in values)
        state[block_id] = {action_id: entry}
        if empty and not block.get("optional"):
            errors[block_id] = REQUIRED
        elif element.get("type") == "number_input":
            problem = _number_error(element, entry.get("value"))
            if problem:
                errors[block_id] = problem
    return {"values": state}, errors
