"""The digest of a tool call's arguments: what an approval (or a quorum vote) is bound to.

``sha256:`` and the hex SHA-256 of the arguments in the JSON Canonicalization Scheme (RFC 8785,
the ``rfc8785`` library): object keys sorted by their UTF-16 code units, no insignificant
whitespace, strings as UTF-8 (no ``\\u`` escapes beyond the ones JCS requires), numbers in
their shortest ECMAScript form (so ``1`` and ``1.0`` are one JSON number, as JSON says).

Deliberately **no Unicode normalisation** (no NFC): a tool receives code points, and two
strings that look alike but differ in code points (``é`` composed or decomposed, a homoglyph)
are different arguments, so they must have different digests. For the same reason nothing is
trimmed or case-folded.

JCS represents numbers as IEEE 754 doubles, so it cannot hold an integer beyond ±(2**53 − 1)
exactly (the library refuses one), nor a string with a lone surrogate. Arguments holding one are
digested from Python's own canonical form instead (sorted keys, no whitespace, ASCII escapes),
under the tag ``sha256-py:``: a different tag, so the two forms can never collide.

The digest is computed where the approval is made (the bot, from the arguments the reviewer was
shown) and again in the graph from the arguments it is about to run (``graph.nodes``); the call
runs only if they agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import rfc8785

JCS_TAG = "sha256:"
PYTHON_TAG = "sha256-py:"


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value`` (raises for what JCS cannot represent exactly)."""
    return rfc8785.dumps(value)


def args_digest(args: Mapping[str, Any]) -> str:
    """The digest of a call's arguments, e.g. ``sha256:3f0a…`` (64 hex digits)."""
    value = dict(args)
    try:
        return JCS_TAG + hashlib.sha256(canonical_json(value)).hexdigest()
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
        return PYTHON_TAG + hashlib.sha256(text.encode("ascii")).hexdigest()


def short(digest: str | None, digits: int = 12) -> str:
    """A digest shortened for people (``sha256:3f0a1b2c3d4e``); ``-`` for none."""
    if not digest:
        return "-"
    tag, _, hexdigits = digest.partition(":")
    return f"{tag}:{hexdigits[:digits]}"
