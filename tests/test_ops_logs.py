"""The log format and the secret filter on real logging records (the end-to-end proof over a
whole flow is in test_ops_process.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import REDACTED, configure_logging, secrets_from_env, set_context

TOKEN = "xoxb-1111-2222-abcdefghijkl"
PASSWORD = "pg-pass-5f3e2a"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    secrets = secrets_from_env(
        {"SLACK_BOT_TOKEN": TOKEN, "DATABASE_URL": f"postgresql://bot:{PASSWORD}@db/bot"}
    )
    handler = configure_logging("json", "INFO", secrets, stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_secrets_are_redacted_in_messages_arguments_extras_and_tracebacks(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("tests.ops")
    log.info("token is %s", TOKEN)
    log.warning("connect to postgresql://bot:%s@db/bot", PASSWORD, extra={"detail": TOKEN})
    try:
        raise RuntimeError(f"auth failed for {TOKEN}")
    except RuntimeError:
        log.exception("call failed")
    output = captured.getvalue()
    assert TOKEN not in output and PASSWORD not in output
    entries = lines(captured)
    assert entries[0]["message"] == f"token is {REDACTED}"
    assert entries[1]["detail"] == REDACTED
    assert REDACTED in str(entries[2]["exception"])


def test_context_and_extra_fields_appear_on_each_line(captured: io.StringIO) -> None:
    async_log = logging.getLogger("tests.ops")
    set_context(thread_id="slack:T1:C1:1.2", review_ref="r-1")
    try:
        async_log.info("deciding", extra={"action": "continue"})
    finally:
        set_context(thread_id=None, review_ref=None)
    async_log.info("no context")
    first, second = lines(captured)
    assert first["thread_id"] == "slack:T1:C1:1.2" and first["review_ref"] == "r-1"
    assert first["action"] == "continue"
    assert {"time", "level", "logger", "message"} <= first.keys()
    assert first["level"] == "INFO" and first["logger"] == "tests.ops"
    assert "thread_id" not in second
