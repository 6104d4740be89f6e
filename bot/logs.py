"""Logging for operators: one JSON object per line (or plain text), request context, no secrets.

Log collectors (Loki, CloudWatch, Datadog...) parse JSON lines without per-app rules, so JSON is
the container default; people reading a terminal during the demo get text. Every line carries the
Slack conversation (``thread_id``) and review (``review_ref``) it concerns when known, so one
conversation can be followed across replicas. Those come from context variables that the server
sets once per Slack request, and they flow into the listener tasks Bolt starts after the ack.

Secrets must never reach a log line, even through an exception message or a library's debug
output; a handler filter replaces every configured secret value before anything is formatted,
and every value the policy redacts that this process has seen (``remember_secrets``: a review's
redacted arguments, once the bot handles them), so a library logging a request at DEBUG level
cannot show it either.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

LogFormat = Literal["json", "text"]
REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6  # shorter values would match ordinary words and wreck the log
MIN_REDACTED_LENGTH = 4  # values the policy redacts are deliberate: mask shorter ones too
MAX_REMEMBERED = 2000  # the most recently seen redacted values; older ones are forgotten

THREAD_ID: ContextVar[str | None] = ContextVar("log_thread_id", default=None)
REVIEW_REF: ContextVar[str | None] = ContextVar("log_review_ref", default=None)

SECRET_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "ANTHROPIC_API_KEY",
)
SECRET_SUFFIXES = ("_TOKEN", "_SECRET", "_API_KEY", "_PASSWORD")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def set_context(*, thread_id: str | None, review_ref: str | None) -> None:
    """Name the conversation and review the current task works on (None: not known).

    Both are always set so a task handling several requests in turn never inherits stale ids.
    """
    THREAD_ID.set(thread_id)
    REVIEW_REF.set(review_ref)


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Every secret the process was configured with: tokens, keys, the database password."""
    env = os.environ if env is None else env
    values = [
        value
        for name, value in env.items()
        if name in SECRET_VARIABLES or name.endswith(SECRET_SUFFIXES)
    ]
    url = env.get("DATABASE_URL")
    if url:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            values.append(password)
    return values


_remembered: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
_remembered_longest_first: tuple[str, ...] = ()


def remember_secrets(values: Iterable[str]) -> None:
    """Mask these values (redacted arguments) in every later log line of this process."""
    global _remembered_longest_first
    fresh = [v for v in values if len(v) >= MIN_REDACTED_LENGTH and v not in _remembered]
    if not fresh:
        return
    for value in fresh:
        _remembered[value] = None
    while len(_remembered) > MAX_REMEMBERED:
        del _remembered[next(iter(_remembered))]
    _remembered_longest_first = tuple(sorted(_remembered, key=len, reverse=True))


def remember_configured_secrets(values: Iterable[str]) -> None:
    """Mask these configured values (MCP servers' env and headers) for the whole process:
    unlike :func:`remember_secrets`, never forgotten."""
    global _configured_longest_first
    fresh = {v for v in values if len(v) >= MIN_REDACTED_LENGTH}
    merged = fresh | set(_configured_longest_first)
    _configured_longest_first = tuple(sorted(merged, key=len, reverse=True))


_configured_longest_first: tuple[str, ...] = ()


class RedactSecrets(logging.Filter):
    """Replace configured secret values in a record's message, exception and stack text.

    It sits on the handler (not a logger) so records propagated from every library pass it.
    The record is rewritten in place, so any other handler sees the redacted text too.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for secrets in (self.secrets, _configured_longest_first, _remembered_longest_first):
            for secret in secrets:
                if secret in text:
                    text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets and not _remembered_longest_first and not _configured_longest_first:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw parts, redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


def _context(record: logging.LogRecord) -> dict[str, Any]:
    """``extra=`` fields win over the context variables (a caller may know better)."""
    fields: dict[str, Any] = {}
    thread_id, review_ref = THREAD_ID.get(), REVIEW_REF.get()
    if thread_id:
        fields["thread_id"] = thread_id
    if review_ref:
        fields["review_ref"] = review_ref
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then context and exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The familiar one-line format, with the conversation appended when known."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context(record)
        if not context:
            return line
        suffix = " ".join(f"{key}={value}" for key, value in context.items())
        head, sep, rest = line.partition("\n")  # keep a traceback below the context
        return f"{head} [{suffix}]{sep}{rest}"


def parse_format(value: str | None) -> LogFormat:
    value = (value or "text").strip().lower()
    if value not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be json or text, not {value!r}")
    return "json" if value == "json" else "text"


class _BotHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so reconfiguring replaces only its own."""


def configure_logging(
    log_format: LogFormat,
    level: str | int = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every logger's records to one handler on ``stream`` (stderr).

    Returns the handler so a caller (a test) can remove it again.
    """
    handler = _BotHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _BotHandler):  # configured twice: replace, never duplicate lines
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
