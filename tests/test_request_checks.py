"""The cheap checks of ``POST /slack/events`` (``bot.transport.http``), one by one: the body cap
(declared or streamed, at and past the limit), Slack's ``v0`` signature with its five-minute
window (either side of now), Slack's certificate check, how a click is told without parsing,
and ``/readyz``'s MCP section. Real Starlette requests, no server: the whole route over real
HTTP is ``tests/test_hostile_requests.py``."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Sequence

import pytest
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from bot.transport.checks import SIGNATURE_MAX_AGE_SECONDS, is_click, is_ssl_check
from bot.transport.http import mcp_section, read_capped, signed_by_slack
from graph.tools.mcp import McpStatus

SECRET = b"the-signing-secret"


def request(chunks: Sequence[bytes], content_length: str | None = None) -> Request:
    """A Starlette request whose body arrives in ``chunks``."""
    headers = [] if content_length is None else [(b"content-length", content_length.encode())]
    scope = {"type": "http", "method": "POST", "path": "/slack/events", "headers": headers}
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    return Request(scope, receive)


def refusal(answer: bytes | Response) -> tuple[int, dict[str, str], str | None]:
    assert isinstance(answer, Response), answer
    return answer.status_code, json.loads(bytes(answer.body)), answer.headers.get("connection")


async def test_a_body_is_read_up_to_the_cap_and_refused_past_it() -> None:
    assert await read_capped(request([b"ab", b"cd"]), limit=4) == b"abcd"
    assert await read_capped(request([b"ab", b"cd"], "4"), limit=4) == b"abcd"
    too_large = (413, {"error": "request body too large"}, "close")
    assert refusal(await read_capped(request([b"ab", b"cde"]), limit=4)) == too_large
    assert refusal(await read_capped(request([b"abcde"], "5"), limit=4)) == too_large
    assert refusal(await read_capped(request([b"ab"], "5"), limit=4)) == too_large  # declared
    bad = (400, {"error": "bad content-length"}, None)
    for declared in ("", "-1", "1e3", " 4", "\u0664", "9" * 16):
        assert refusal(await read_capped(request([b"ab"], declared), limit=4)) == bad, declared


def signed(body: bytes, timestamp: str, secret: bytes = SECRET) -> Headers:
    digest = hmac.new(secret, b"v0:%s:%s" % (timestamp.encode(), body), hashlib.sha256)
    return Headers(
        {"x-slack-request-timestamp": timestamp, "x-slack-signature": "v0=" + digest.hexdigest()}
    )


def test_a_signature_is_slacks_v0_over_the_raw_body_within_five_minutes() -> None:
    body, now = b'{"type":"event_callback"}', int(time.time())
    margin = 10  # far from the edge: the clock moves while the test runs
    for offset in (0, SIGNATURE_MAX_AGE_SECONDS - margin, -(SIGNATURE_MAX_AGE_SECONDS - margin)):
        assert signed_by_slack(SECRET, body, signed(body, str(now - offset))), offset
    for offset in (SIGNATURE_MAX_AGE_SECONDS + margin, -(SIGNATURE_MAX_AGE_SECONDS + margin)):
        assert not signed_by_slack(SECRET, body, signed(body, str(now - offset))), offset
    stamp = str(now)
    assert not signed_by_slack(SECRET, body + b" ", signed(body, stamp))
    assert not signed_by_slack(SECRET, body, signed(body, stamp, b"another-secret"))
    good = signed(body, stamp)
    unprefixed = good["x-slack-signature"].removeprefix("v0=")
    for headers in (
        {"x-slack-request-timestamp": stamp, "x-slack-signature": unprefixed},
        {"x-slack-request-timestamp": stamp},
        {"x-slack-signature": good["x-slack-signature"]},
        {"x-slack-request-timestamp": stamp, "x-slack-signature": good["x-slack-signature"] + "é"},
        {"x-slack-request-timestamp": f"{stamp}.0", "x-slack-signature": good["x-slack-signature"]},
    ):
        assert not signed_by_slack(SECRET, body, Headers(headers)), headers


def test_a_signature_exactly_five_minutes_old_is_accepted_as_bolt_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the edge itself, ours agrees with ``slack_sdk``'s ``SignatureVerifier`` (which Bolt
    runs after it): refused only *over* five minutes, either way, so neither check lets through
    what the other refuses. The clock is fixed on a whole second, the only time the edge can be
    met exactly."""
    body, now = b'{"type":"event_callback"}', 1_800_000_000
    monkeypatch.setattr(time, "time", lambda: float(now))
    verifier = SignatureVerifier(SECRET.decode(), clock=FixedClock(now))
    for offset, accepted in (
        (SIGNATURE_MAX_AGE_SECONDS, True),
        (-SIGNATURE_MAX_AGE_SECONDS, True),
        (SIGNATURE_MAX_AGE_SECONDS + 1, False),
        (-SIGNATURE_MAX_AGE_SECONDS - 1, False),
    ):
        headers = signed(body, str(now - offset))
        assert signed_by_slack(SECRET, body, headers) is accepted, offset
        assert verifier.is_valid_request(body, dict(headers)) is accepted, offset


class FixedClock(Clock):
    def __init__(self, now: int) -> None:
        self.at = now

    def now(self) -> float:
        return float(self.at)


def test_slacks_certificate_check_is_a_short_body_naming_ssl_check() -> None:
    assert is_ssl_check(b"ssl_check=1&token=t")
    assert is_ssl_check(b"token=t&ssl_check=1")
    assert is_ssl_check(b"ssl_check=1&token=" + b"t" * (512 - 18))  # 512 bytes
    assert not is_ssl_check(b"ssl_check=1&token=" + b"t" * (513 - 18))
    assert not is_ssl_check(b"xssl_check=1&token=t")
    assert not is_ssl_check(b"ssl_check=10")
    assert not is_ssl_check(b'{"ssl_check=1"}')


def test_a_click_is_told_by_how_its_form_body_starts() -> None:
    for dumps in (json.dumps, lambda p: json.dumps(p, separators=(",", ":"))):
        payload = dumps({"type": "block_actions", "actions": []})
        body = urllib.parse.urlencode({"payload": payload}).encode()
        assert is_click(body, "application/x-www-form-urlencoded")
        assert is_click(body, None)
        assert not is_click(body, "application/json")
    view = urllib.parse.urlencode({"payload": json.dumps({"type": "view_submission"})}).encode()
    assert not is_click(view, "application/x-www-form-urlencoded")


def test_readyz_names_each_mcp_server_and_its_tools_or_its_error() -> None:
    assert mcp_section([]) == {}
    up = McpStatus("notes", "stdio", ("notes__add", "notes__list"))
    down = McpStatus("github", "http", error="connection refused")
    assert mcp_section([up, down]) == {
        "mcp": {
            "notes": {"status": "ok", "tools": 2},
            "github": {"status": "unavailable", "error": "connection refused"},
        }
    }
