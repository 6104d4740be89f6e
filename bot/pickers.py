"""Slack's own pickers in the Edit form, where a tool's schema says a value is a person, people,
a channel, channels, a date or a moment (`bot.readable.FORMATS`), and reading them back into
exactly the schema's type. Pure.

A picker is offered only when the proposed value is one it can hold unchanged: a user or channel
*id* (``#general`` is a name, which no picker can start from, so it keeps a text input), a
calendar date written ``YYYY-MM-DD``, a moment to the minute (``datetimepicker`` has no seconds).
Anything else keeps the text input of `bot.modals`, so what the form starts with is always what
would run. Read back:

- ``users_select``/``conversations_select``: the id, a string;
- ``multi_users_select``/``multi_conversations_select``: the ids, a list of strings;
- ``datepicker``: ``YYYY-MM-DD``, a string;
- ``datetimepicker``: Unix seconds, given back as the schema's type: an integer for an
  integer schema, else an ISO 8601 string in UTC; a moment left as proposed keeps the proposed
  string exactly (the same moment written in another zone is not rewritten).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from bot.readable import (
    CHANNEL,
    CHANNEL_ID,
    CHANNELS,
    DATE,
    DATE_TIME,
    USER,
    USER_ID,
    USERS,
    value_format,
)

USER_PICKER = "user"
USERS_PICKER = "users"
CHANNEL_PICKER = "channel"
CHANNELS_PICKER = "channels"
DATE_PICKER = "date"
MOMENT_PICKER = "datetime"
KINDS = frozenset(
    {USER_PICKER, USERS_PICKER, CHANNEL_PICKER, CHANNELS_PICKER, DATE_PICKER, MOMENT_PICKER}
)
MAX_PICKED = 100
_CHANNEL_FILTER = {"include": ["public", "private"]}

Element = dict[str, Any]


def _ids(value: Any, pattern: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= MAX_PICKED
        and all(isinstance(item, str) and pattern.fullmatch(item) for item in value)
    )


def _day(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def _epoch(value: Any) -> int | None:
    """Unix seconds of a moment a ``datetimepicker`` can hold (whole minutes), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value % 60 == 0 else None
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    if at.tzinfo is None or at.second or at.microsecond:
        return None
    return int(at.timestamp())


def _id(value: Any, pattern: Any) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _moment_fits(kind: Any, value: Any) -> bool:
    """A moment the picker can hold, written as the schema's type says."""
    return _epoch(value) is not None and isinstance(value, int) == (kind == "integer")


# format -> (schema type(s), picker, whether a proposed value fits the picker unchanged)
_FITS: dict[str, tuple[tuple[str, ...], str, Any]] = {
    USER: (("string",), USER_PICKER, lambda _, v: _id(v, USER_ID)),
    USERS: (("array",), USERS_PICKER, lambda _, v: _ids(v, USER_ID)),
    CHANNEL: (("string",), CHANNEL_PICKER, lambda _, v: _id(v, CHANNEL_ID)),
    CHANNELS: (("array",), CHANNELS_PICKER, lambda _, v: _ids(v, CHANNEL_ID)),
    DATE: (("string",), DATE_PICKER, lambda _, v: _day(v)),
    DATE_TIME: (("string", "integer"), MOMENT_PICKER, _moment_fits),
}


def picker_kind(schema: Mapping[str, Any], value: Any) -> str | None:
    """Which picker fits this argument and its proposed value, or None for a text input."""
    fit = _FITS.get(value_format(schema) or "")
    if fit is None:
        return None
    types, picker, fits = fit
    kind = schema.get("type")
    return picker if kind in types and (value is None or fits(kind, value)) else None


def _placeholder(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def picker_element(kind: str, schema: Mapping[str, Any], value: Any, action_id: str) -> Element:
    """The picker for ``kind``, starting from the proposed value."""
    element: Element = {"action_id": action_id}
    limit = min(int(schema.get("maxItems", MAX_PICKED)), MAX_PICKED)
    if kind == USER_PICKER:
        element.update(type="users_select", placeholder=_placeholder("Choose a person"))
        if value:
            element["initial_user"] = value
    elif kind == USERS_PICKER:
        element.update(type="multi_users_select", placeholder=_placeholder("Choose people"))
        element["max_selected_items"] = max(limit, 1)
        if value:
            element["initial_users"] = list(value)
    elif kind == CHANNEL_PICKER:
        element.update(type="conversations_select", placeholder=_placeholder("Choose a channel"))
        if not (value and value.startswith("D")):  # a DM proposed stays choosable
            element["filter"] = dict(_CHANNEL_FILTER)
        if value:
            element["initial_conversation"] = value
    elif kind == CHANNELS_PICKER:
        element.update(
            type="multi_conversations_select", placeholder=_placeholder("Choose channels")
        )
        element.update(filter=dict(_CHANNEL_FILTER), max_selected_items=max(limit, 1))
        if value:
            element["initial_conversations"] = list(value)
    elif kind == DATE_PICKER:
        element.update(type="datepicker", placeholder=_placeholder("Choose a date"))
        if value:
            element["initial_date"] = value
    else:
        element["type"] = "datetimepicker"
        if value is not None:
            element["initial_date_time"] = _epoch(value)
    return element


def _picked_ids(raw: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    picked = raw.get(key)
    if not isinstance(picked, list) or not picked:
        return False, None
    if not all(isinstance(item, str) for item in picked):
        raise ValueError("Choose again: Slack sent something that is not an id.")
    return True, list(picked)


def _picked_id(raw: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    picked = raw.get(key)
    return (True, picked) if isinstance(picked, str) and picked else (False, None)


def read_picker(
    kind: str, schema: Mapping[str, Any], raw: Mapping[str, Any], proposed: Any
) -> tuple[bool, Any]:
    """(present, value) for one submitted picker, in the schema's own type; raises
    ValueError with a message for the person."""
    if kind == USER_PICKER:
        return _picked_id(raw, "selected_user")
    if kind == USERS_PICKER:
        return _picked_ids(raw, "selected_users")
    if kind == CHANNEL_PICKER:
        return _picked_id(raw, "selected_conversation")
    if kind == CHANNELS_PICKER:
        return _picked_ids(raw, "selected_conversations")
    if kind == DATE_PICKER:
        present, day = _picked_id(raw, "selected_date")
        if present and not _day(day):
            raise ValueError("Choose a date.")
        return present, day
    return _read_moment(schema, raw, proposed)


def _read_moment(
    schema: Mapping[str, Any], raw: Mapping[str, Any], proposed: Any
) -> tuple[bool, Any]:
    seconds = raw.get("selected_date_time")
    if seconds is None:
        return False, None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("Choose a date and a time.")
    if schema.get("type") == "integer":
        return True, int(seconds)
    if _epoch(proposed) == int(seconds):
        return True, proposed  # the same moment: kept exactly as it was written
    return True, datetime.fromtimestamp(int(seconds), UTC).isoformat()
