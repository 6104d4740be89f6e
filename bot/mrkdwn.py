"""Making user- and model-written text safe to show in Slack.

Slack turns ``<!channel>``, ``<@U123>`` and ``<url|label>`` into pings and links; escaping the
three control characters shows such text literally, as it was written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int, suffix: str = "…") -> str:
    return text if len(text) <= limit else text[: max(0, limit - len(suffix))] + suffix


def escape_within(text: str, limit: int) -> tuple[str, int]:
    """``text`` escaped, cut (between characters, never inside an entity) so the escaped
    form fits ``limit``; and how many characters were left out."""
    out: list[str] = []
    used = 0
    for index, char in enumerate(text):
        piece = escape(char)
        if used + len(piece) > limit:
            return "".join(out), len(text) - index
        out.append(piece)
        used += len(piece)
    return "".join(out), 0


def show_value(value: Any) -> str:
    """An argument value as a reader expects it: strings bare, everything else as JSON, and
    invisible characters written out (`visible`), wherever it is shown."""
    if isinstance(value, str):
        return visible(value)
    return visible(json.dumps(value, ensure_ascii=False, indent=None))


def user_mention(user_id: str | None) -> str:
    """A mention of a real Slack user id we trust (ours), or a neutral word."""
    if user_id and user_id.isalnum():
        return f"<@{user_id}>"
    return "someone"


def slack_date(unix_seconds: float, fallback: str) -> str:
    """Slack's date token: every reader sees the time in their own time zone."""
    return f"<!date^{int(unix_seconds)}^{{date_short_pretty}} at {{time}}|{escape(fallback)}>"


# -- invisible characters ----------------------------------------------------------------------

_INVISIBLE = re.compile(
    "[\u202a-\u202e\u2066-\u2069"  # bidi embeddings, overrides and isolates
    "\u200e\u200f\u061c"  # bidi marks
    "\u200b-\u200d\u2060\ufeff"  # zero-width space, joiners, word joiner, BOM
    "\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 and C1 controls except tab and newline
)


def visible(text: str) -> str:
    """The text with every invisible or direction-changing character written out as
    ``⟨U+202E⟩``, so what a reviewer reads is what will run, character for character."""
    return _INVISIBLE.sub(lambda match: f"⟨U+{ord(match.group()):04X}⟩", text)


def has_invisible(text: str) -> bool:
    return _INVISIBLE.search(text) is not None


# -- Slack's wire format -> the words people typed ---------------------------------------------

_REFERENCE = re.compile(r"<([^<>]*)>")
_USER = re.compile(r"@([UW][A-Z0-9]+)(?:\|[^<>]*)?")
_CHANNEL = re.compile(r"#([CGD][A-Z0-9]+)(?:\|([^<>]*))?")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def unescape(text: str) -> str:
    """Slack's three entities back to characters (``&amp;`` last, so ``&amp;lt;`` stays
    ``&lt;``). Slack encodes only these three, so nothing else is touched."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _special(body: str) -> str:
    """``<!here>``, ``<!subteam^S1|@team>``, ``<!date^…|fallback>``: the words they stand for."""
    command, _, label = body[1:].partition("|")
    if command in _SPECIAL:
        return _SPECIAL[command]
    if label:
        return unescape(label)
    if command.startswith("subteam^"):
        return "@" + command.split("^")[1]
    return "@" + command.split("^")[0]


def _readable_reference(body: str) -> str:
    user = _USER.fullmatch(body)
    if user:
        return f"<@{user.group(1)}>"
    channel = _CHANNEL.fullmatch(body)
    if channel:
        name = channel.group(2)
        return f"<#{channel.group(1)}|{unescape(name)}>" if name else f"<#{channel.group(1)}>"
    if body.startswith("!"):
        return _special(body)
    url, _, label = body.partition("|")
    url, label = unescape(url), unescape(label)
    shown = url.removeprefix("mailto:")
    if not label or label in (url, shown) or url.endswith("//" + label):
        return shown
    return f"{label} ({shown})"


def decode_incoming(text: str) -> str:
    """A Slack message's text as the agent reads it, decoded exactly once.

    Entities become the characters the person typed. People and channels stay Slack
    references, ``<@U0BOB>`` and ``<#C0RANDOM|random>``, so the model can pass their ids to
    tools (the Slack tools accept both forms). ``<!here>``/``<!channel>``/``<!everyone>``
    become ``@here``/``@channel``/``@everyone``, a user group its ``@handle``, a date its
    fallback text, and a link ``label (url)`` (or just the url): words, which the Slack
    tools post as words, never as pings or disguised links.
    """
    out: list[str] = []
    pos = 0
    for match in _REFERENCE.finditer(text):
        out.append(unescape(text[pos : match.start()]))
        out.append(_readable_reference(match.group(1)))
        pos = match.end()
    out.append(unescape(text[pos:]))
    return "".join(out)


# -- mrkdwn -> plain text (modal errors, which Slack shows as plain text) ---------------------

_EMPHASIS = re.compile(r"(?<![\w*_~`])([*_~])(?=[^\s*_~])(.+?)(?<=[^\s*_~])\1(?![\w*_~`])")
_CODE = re.compile(r"```(.+?)```|`([^`]+)`", re.S)


def _plain_reference(body: str, names: Mapping[str, str]) -> str:
    user = _USER.fullmatch(body)
    if user:
        name = names.get(user.group(1))
        return f"@{name}" if name else "someone"
    channel = _CHANNEL.fullmatch(body)
    if channel:
        return f"#{unescape(channel.group(2))}" if channel.group(2) else "a channel"
    if body.startswith("!"):
        return _special(body)
    url, _, label = body.partition("|")
    return unescape(label or url.removeprefix("mailto:"))


def mentioned_users(text: str) -> list[str]:
    """The user ids a mrkdwn text mentions, in order, once each."""
    found = (_USER.fullmatch(m.group(1)) for m in _REFERENCE.finditer(text))
    return list(dict.fromkeys(m.group(1) for m in found if m))


def to_plain(text: str, names: Mapping[str, str] | None = None) -> str:
    """mrkdwn as plain words: mentions as ``@name`` (``someone`` when the name is unknown),
    dates as their fallback text, links as their label, entities decoded, and ``*``/``_``/
    ``~``/backticks removed only where they mark emphasis or code (``'_'`` stays ``'_'``)."""
    names = names or {}
    out: list[str] = []
    pos = 0
    for match in _REFERENCE.finditer(text):
        out.append(text[pos : match.start()])
        out.append(_plain_reference(match.group(1), names).replace("&", "&amp;"))
        pos = match.end()
    out.append(text[pos:])
    words = _CODE.sub(lambda m: m.group(1) or m.group(2), "".join(out))
    previous = None
    while previous != words:
        previous, words = words, _EMPHASIS.sub(r"\2", words)
    return unescape(words)
