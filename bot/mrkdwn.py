"""Making user- and model-written text safe to show in Slack.

Slack turns ``<!channel>``, ``<@U123>`` and ``<url|label>`` into pings and links; escaping the
three control characters shows such text literally, as it was written.
"""

from __future__ import annotations

import json
from typing import Any


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int, suffix: str = "…") -> str:
    return text if len(text) <= limit else text[: max(0, limit - len(suffix))] + suffix


def show_value(value: Any) -> str:
    """An argument value as a reader expects it: strings bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=None)


def user_mention(user_id: str | None) -> str:
    """A mention of a real Slack user id we trust (ours), or a neutral word."""
    if user_id and user_id.isalnum():
        return f"<@{user_id}>"
    return "someone"


def slack_date(unix_seconds: float, fallback: str) -> str:
    """Slack's date token: every reader sees the time in their own time zone."""
    return f"<!date^{int(unix_seconds)}^{{date_short_pretty}} at {{time}}|{escape(fallback)}>"
