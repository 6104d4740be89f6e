"""The one place that uses Bolt's private request helpers, and why.

Bolt's public ``AsyncBoltRequest`` takes the raw body as a string in HTTP mode and parses it
itself; a dict body is accepted only in Socket Mode, where Bolt skips signature verification.
The HTTP route has parsed the body already (:func:`bot.payloads.well_formed`, to refuse shapes
Bolt would crash on), and parsing a click's URL-encoded payload twice was about a quarter of its
handling. So the request is built from the parsed body with the two functions Bolt itself uses:
``parse_body`` (the same parsing Bolt would do) and ``build_async_context``. They are not part
of Bolt's documented API: check them when upgrading slack_bolt (tests/test_hostile_requests.py
and tests/test_fuzz_inputs.py exercise both).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncBoltContext, AsyncBoltRequest
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.internals import parse_body
from starlette.requests import Request

__all__ = ["ParsedRequest", "parse_body"]


class ParsedRequest(AsyncBoltRequest):
    """A Bolt request made from a body :func:`bot.payloads.well_formed` has parsed already.

    A click's payload carries the whole message, URL-encoded; parsing it a second time (as
    ``AsyncSlackRequestHandler`` does) was about a quarter of a click's handling before the
    listener ran. Bolt still verifies the signature over the raw body, as for any request
    (a second check after :func:`bot.transport.http.signed_by_slack`: defence in depth, and
    the only check for an app served some other way).
    """

    def __init__(self, raw: str, body: dict[str, Any], request: Request) -> None:
        super().__init__(body="", query=request.url.query, headers=dict(request.headers))
        self.raw_body = raw
        self.body = body
        self.context = build_async_context(AsyncBoltContext(), body)
