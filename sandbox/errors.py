"""The error type every Slack-shaped failure travels in."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Slack Web API error: `error` is the code the bot sees, `extra` extra fields.

    Raising it anywhere below the HTTP layer lets the endpoint turn it into
    `{"ok": false, "error": ...}` exactly once.
    """

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body Slack would return for this error."""
        return {"ok": False, "error": self.error, **self.extra}
