"""The cheap checks every request to ``/slack/events`` passes first, as pure functions over raw
bytes: the body cap, Slack's signature, Slack's certificate check and "is this a button click".

They are shared by the in-process server (:mod:`bot.transport.http`) and the acknowledging
process in front of it (:mod:`bot.transport.acker`), which imports nothing heavier than this
module: it must start in a fraction of a second and stay small.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import urllib.parse

MAX_BODY_BYTES = 1 << 20
"""Largest request body read (1 MiB). Slack's own payloads are far smaller: a click carries the
message clicked (at most 50 blocks), a modal submission the modal. A longer body is refused
with 413 as soon as its ``Content-Length`` (or the bytes read so far) says so, and its
connection closed (after a bounded lingering read, so the client can read the 413), so it is
never read whole."""

LINGER_SECONDS = 2.0
"""The longest a refused connection is kept open to discard what its client still sends."""

LINGER_BYTES = 32 << 20
"""The most a refused connection discards before it is closed anyway (32 MiB: a client that
streams a 16 MiB body before it reads the answer still reads it; discarding is a socket read
and nothing else)."""

DIGITS = re.compile(r"[0-9]{1,15}")
"""A ``Content-Length`` or a timestamp: ASCII digits only (``int()`` also takes " 1_0", "١")."""

SIGNATURE_MAX_AGE_SECONDS = 300  # Slack's own advice: refuse replays over five minutes old


def signature_matches(secret: bytes, raw: bytes, timestamp: str, signature: str) -> bool:
    """Slack's ``v0`` signature over the raw bytes, with a timestamp under five minutes old.

    Computed here rather than with ``slack_sdk``'s ``SignatureVerifier`` (which Bolt still
    runs afterwards), because it raises instead of answering False on input Slack never
    sends: a timestamp that is not an integer (``int()``), a body that is not UTF-8 (it
    decodes the body first), a signature that is not ASCII (``compare_digest`` on str).
    """
    if not DIGITS.fullmatch(timestamp) or not signature.isascii():
        return False
    if abs(time.time() - int(timestamp)) > SIGNATURE_MAX_AGE_SECONDS:
        return False
    expected = hmac.new(secret, b"v0:%s:%s" % (timestamp.encode(), raw), hashlib.sha256)
    return hmac.compare_digest(b"v0=" + expected.hexdigest().encode(), signature.encode())


def is_ssl_check(raw: bytes) -> bool:
    """Slack's certificate check of a slash command URL (``ssl_check=1&token=...``): Bolt
    answers it 200 with nothing in it, signed or not; so do we, without parsing more."""
    return len(raw) <= 512 and b"ssl_check=1" in raw.split(b"&")


CLICK_PREFIXES = tuple(
    b"payload=" + urllib.parse.quote_plus(start).encode()
    for start in ('{"type":"block_actions"', '{"type": "block_actions"')
)
"""How a button click's form body starts: Slack's payload names its type first (compact JSON;
the second form is Python's ``json.dumps``, as the sandbox and the benchmark send it)."""


def is_click(raw: bytes, content_type: str | None) -> bool:
    """Whether a signed body is a button click (``block_actions``), told without parsing it.

    Parsing a click's payload (the whole message, URL-encoded) is most of what its
    acknowledgement would cost, so it is parsed after the acknowledgement, and a click whose
    payload then turns out malformed is dropped with a warning (it was signed: Slack does not
    send such bodies). A click spelled any other way is parsed first, then acknowledged.
    """
    return content_type != "application/json" and raw.startswith(CLICK_PREFIXES)
