"""Redacted arguments stay redacted in every output: the one place that knows how.

The policy (``bot.policy.ToolPolicy.redact``) names arguments whose values nobody may see. The
review card and the audit trail never receive those values (``ToolPolicy.redacted``); but a
tool may echo them in its result ("Set the topic to: …"), the model may quote them in its reply,
and a library may log them. Everything the bot posts or lists passes through this module: it
collects the values to hide (``secret_values``) and masks every occurrence (``mask``), in the
forms a value travels in (as written, JSON-encoded, Slack-escaped).

Pure functions, no I/O: the caller gathers the arguments (from ``ToolResult.args`` and the
thread's review rows) and decides where the masked text goes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from bot.mrkdwn import escape
from bot.policy import Policy

MASK = "[redacted]"
MIN_SECRET_CHARS = 4
"""Shorter values would match ordinary words (masking "on" everywhere helps nobody); a policy
that redacts a value this short cannot keep it out of free text, only out of argument lists."""


def redacts_anything(policy: Policy) -> bool:
    """Whether any tool has redacted arguments at all (if not, there is nothing to look up)."""
    return (
        bool(policy.defaults.redact)
        or any(tool.redact for tool in policy.tools.values())
        or any(policy.redacts(name) for name in policy.rules)
    )


def _forms(value: Any) -> Iterable[str]:
    """The spellings of one value a text may contain: as written, JSON-encoded (with and
    without its quotes, ASCII-escaped or not), and Slack-escaped; for a list or object, also
    each string inside it."""
    if isinstance(value, str):
        yield value
        yield escape(value)
        for ascii_only in (True, False):
            encoded = json.dumps(value, ensure_ascii=ascii_only)
            yield encoded
            yield encoded[1:-1]
        return
    if isinstance(value, bool) or value is None:
        return  # true/false/null are words, not secrets
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _forms(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _forms(item)
    for ascii_only in (True, False):
        try:
            yield json.dumps(value, ensure_ascii=ascii_only)
        except (TypeError, ValueError):
            yield str(value)


def secret_values(args: Mapping[str, Any], redact: Collection[str]) -> frozenset[str]:
    """Every form of every redacted argument's value in ``args``, long enough to mask."""
    return frozenset(
        form
        for name in redact
        if name in args
        for form in _forms(args[name])
        if len(form) >= MIN_SECRET_CHARS
    )


def mask(text: str, secrets: Collection[str]) -> str:
    """``text`` with every occurrence of every secret replaced by ``[redacted]``; longest
    first, so a secret containing another is replaced whole."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text
