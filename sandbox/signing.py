"""Slack's v0 request signing, so the bot's real verification code is exercised."""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """`v0=` + hex HMAC-SHA256 over `v0:{timestamp}:{body}`, as Slack computes it."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The two headers Slack adds to every request it sends an app."""
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature(secret, timestamp, body),
    }
