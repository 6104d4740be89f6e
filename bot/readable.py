"""Arguments as people read them: user ids as names, channel ids as ``#names``, moments as
dates in the reader's time zone, URLs as links, nested JSON as a list. Pure: names come in
as a `Names` the caller looked up (`bot.names`), so every shape is unit-tested offline.

What you see is what runs, so every readable form keeps the exact value beside it:

- a person is ``@Name`` in plain words *and* their id in code, ``@Bob Lee (`U0BOB`)``. Never
  a ``<@U…>`` mention: a mention in a posted message notifies the person (so does a
  ``rich_text`` ``user`` element, which is how Slack's own client writes a mention), and a card
  about inviting someone must not ping them before anyone has approved it;
- a channel is ``#name (`C0GEN`)``, a plain word too (no ``<#C…>`` link that Slack would
  render from its own, possibly different, view of the channel);
- a moment (``date-time``) is Slack's date token, which each reader sees in their own time
  zone, followed by the exact value; a calendar ``date`` has no time zone, so it is written out
  as the day itself (a token for its midnight would show the day before west of UTC);
- a URL is a link whose label is the URL itself, character for character;
- a list or object is a bulleted list whose leaves are their exact JSON (``"text"``, ``1``,
  ``true``), so ``"1"`` and ``1`` still read differently.

A name that was not resolved shows the id alone; a value that does not have the shape its
format promises (``#general`` for a channel, a naive time) is shown as it is, unchanged;
a redacted value (``[redacted]``) is never resolved nor formatted. Anything the readable form
cannot show whole within `READABLE_LIMIT` falls back to the exact value (`None` here), which the
card cuts with a visible note.

A tool marks such arguments with the JSON-schema ``format`` of a property (see `FORMATS`);
for a list, ``slack-users``/``slack-channels`` on the array, or ``slack-user``/
``slack-channel`` on its ``items``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from bot.mrkdwn import escape, slack_date, visible

USER = "slack-user"
USERS = "slack-users"
CHANNEL = "slack-channel"
CHANNELS = "slack-channels"
DATE_TIME = "date-time"
DATE = "date"
URI = "uri"
FORMATS = frozenset({USER, USERS, CHANNEL, CHANNELS, DATE_TIME, DATE, URI})
MASK = "[redacted]"  # bot.policy.ToolPolicy.redacted writes this in place of a value
READABLE_LIMIT = 1500  # of a section's 3,000: room for the argument's name and a card of many
MAX_DEPTH = 4
NAME_CHARS = 80

USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
_SAFE_URL = re.compile(r"(?:https?://|mailto:)[^\s<>|`]+", re.IGNORECASE)
_BULLETS = ("•", "◦", "▪", "▫")
_MARKUP = re.compile(r"[*~`:\n]|^_|_$|\s_|_\s")  # would read as formatting or an emoji


@dataclass(frozen=True)
class Names:
    """Display names by id, as looked up; an id missing here is shown bare."""

    users: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)


NO_NAMES = Names()


# -- which format an argument has ----------------------------------------------------------


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` and unwrap ``anyOf: [X, null]`` (pydantic's Optional)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = dict(root.get("$defs", {}).get(ref.split("/")[-1], {}))
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1 and isinstance(options[0], Mapping):
        inner = _resolve(options[0], root)
        return {**{k: v for k, v in schema.items() if k != "anyOf"}, **inner}
    return schema


def property_schema(args_schema: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """One argument's schema, with references followed."""
    properties = args_schema.get("properties", {})
    found = properties.get(name) if isinstance(properties, Mapping) else None
    return _resolve(found, args_schema) if isinstance(found, Mapping) else {}


def value_format(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> str | None:
    """The format an argument's schema declares (one of `FORMATS`), else None. A list of
    people is ``slack-users`` on the array or ``slack-user`` on its items; likewise channels."""
    schema = _resolve(schema, root or schema)
    declared = schema.get("format")
    if schema.get("type") == "array":
        items = schema.get("items")
        items = _resolve(items, root or schema) if isinstance(items, Mapping) else {}
        inner = items.get("format")
        if declared in (USERS, CHANNELS):
            return str(declared)
        return {USER: USERS, CHANNEL: CHANNELS}.get(str(inner))
    return str(declared) if declared in FORMATS - {USERS, CHANNELS} else None


def formats_of(args_schema: Mapping[str, Any]) -> dict[str, str]:
    """Every argument's declared format, by argument name."""
    properties = args_schema.get("properties", {})
    names = properties if isinstance(properties, Mapping) else {}
    found = {name: value_format(property_schema(args_schema, name), args_schema) for name in names}
    return {name: fmt for name, fmt in found.items() if fmt}


# -- which ids to look up ------------------------------------------------------------------


def _ids(value: Any, fmt: str, pattern: re.Pattern[str]) -> Iterable[str]:
    items = value if fmt in (USERS, CHANNELS) and isinstance(value, list) else [value]
    return (item for item in items if isinstance(item, str) and pattern.fullmatch(item))


def wanted_ids(
    args: Mapping[str, Any], args_schema: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """(user ids, channel ids) the arguments name, in order, once each. The caller passes the
    arguments as people may see them (redacted ones already masked), so a secret is never
    sent to Slack to be looked up."""
    users: list[str] = []
    channels: list[str] = []
    for name, fmt in formats_of(args_schema).items():
        value = args.get(name)
        if value is None or value == MASK:
            continue
        if fmt in (USER, USERS):
            users.extend(_ids(value, fmt, USER_ID))
        elif fmt in (CHANNEL, CHANNELS):
            channels.extend(_ids(value, fmt, CHANNEL_ID))
    return list(dict.fromkeys(users)), list(dict.fromkeys(channels))


# -- rendering -----------------------------------------------------------------------------


def _code(text: str) -> str | None:
    """``text`` as inline code, or None when inline code cannot hold it exactly."""
    if not text or "`" in text or "\n" in text:
        return None
    return f"`{escape(text)}`"


def _name(name: str) -> str:
    shown = visible(name.strip())
    return escape(shown if len(shown) <= NAME_CHARS else shown[: NAME_CHARS - 1] + "…")


def person(user_id: str, names: Names) -> str:
    """``@Name (`U…`)`` in plain words (no ping), or the id alone when it has no name."""
    name = names.users.get(user_id)
    return f"@{_name(name)} (`{user_id}`)" if name else f"`{user_id}`"


def channel(channel_id: str, names: Names) -> str:
    name = names.channels.get(channel_id)
    return f"#{_name(name.lstrip('#'))} (`{channel_id}`)" if name else f"`{channel_id}`"


def _moment(value: Any) -> datetime | None:
    """An aware moment from an ISO 8601 string or Unix seconds; None for anything else (a
    naive time names no moment: which zone it meant is unknown)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def moment(value: Any) -> str | None:
    at = _moment(value)
    exact = _code(visible(str(value)))
    if at is None or exact is None:
        return None
    token = slack_date(at.timestamp(), at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return f"{token} ({exact})"


def calendar_day(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    exact = _code(value)
    return f"{day.strftime('%a %-d %b %Y')} ({exact})" if exact else None


def link(value: Any) -> str | None:
    """A link labelled by its own URL, so the label cannot hide another target."""
    if not isinstance(value, str) or not _SAFE_URL.fullmatch(value):
        return None
    return f"<{escape(value)}|{escape(value)}>"


def _leaf(value: Any) -> str | None:
    return _code(visible(json.dumps(value, ensure_ascii=False)))


def _tree(value: Any, depth: int, lines: list[str]) -> bool:
    """Append ``value`` as bullet lines; False if some part has no exact readable form."""
    if depth >= MAX_DEPTH:
        return False
    pad, bullet = "      " * depth, _BULLETS[depth % len(_BULLETS)]
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    for key, item in items:
        if isinstance(value, Mapping) and _MARKUP.search(str(key)):
            return False  # a key that would read as formatting: the exact JSON instead
        label = f"*{escape(visible(str(key)))}*: " if isinstance(value, Mapping) else ""
        if isinstance(item, Mapping | list) and item:
            lines.append(f"{pad}{bullet} {label.rstrip(' ')}")
            if not _tree(item, depth + 1, lines):
                return False
            continue
        leaf = _leaf(item)
        if leaf is None:
            return False
        lines.append(f"{pad}{bullet} {label}{leaf}")
    return True


def nested(value: Any) -> str | None:
    """A non-empty list or object as bullet lines, each leaf its exact JSON."""
    if not isinstance(value, Mapping | list) or not value:
        return None
    lines: list[str] = []
    return "\n".join(lines) if _tree(value, 0, lines) else None


def _people(value: Any, names: Names, one: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return None
    shown = [one(item, names) if isinstance(item, str) else None for item in value]
    if any(line is None for line in shown):
        return None
    return "\n".join(f"• {line}" for line in shown)


def _one_user(value: Any, names: Names) -> str | None:
    return person(value, names) if isinstance(value, str) and USER_ID.fullmatch(value) else None


def _one_channel(value: Any, names: Names) -> str | None:
    ok = isinstance(value, str) and CHANNEL_ID.fullmatch(value)
    return channel(value, names) if ok else None


def inline_value(value: Any, fmt: str | None, names: Names = NO_NAMES) -> str | None:
    """People or channels on one line (``@bob (`U0BOB`), @carol (`U0CAROL`)``), for a line
    that shows a change; None for any other value or shape (shown exactly instead)."""
    one = {USER: _one_user, USERS: _one_user, CHANNEL: _one_channel, CHANNELS: _one_channel}
    render = one.get(fmt or "")
    if render is None or value == MASK:
        return None
    items = value if fmt in (USERS, CHANNELS) and isinstance(value, list) else [value]
    shown = [render(item, names) for item in items]
    if not items or any(line is None for line in shown):
        return None
    line = ", ".join(str(text) for text in shown)
    return line if len(line) <= READABLE_LIMIT else None


def readable_value(value: Any, fmt: str | None, names: Names = NO_NAMES) -> str | None:
    """The value as mrkdwn people read, with its exact form beside it; None when the plain
    exact form should be shown instead (redacted, not the promised shape, or too long)."""
    if value is None or value == MASK:
        return None
    shown: str | None
    if fmt == USER:
        shown = _one_user(value, names)
    elif fmt == USERS:
        shown = _people(value, names, _one_user)
    elif fmt == CHANNEL:
        shown = _one_channel(value, names)
    elif fmt == CHANNELS:
        shown = _people(value, names, _one_channel)
    elif fmt == DATE_TIME:
        shown = moment(value)
    elif fmt == DATE:
        shown = calendar_day(value)
    elif fmt == URI:
        shown = link(value)
    else:
        shown = nested(value)
    return shown if shown is not None and len(shown) <= READABLE_LIMIT else None
