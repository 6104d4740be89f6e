"""Reading Slack's wire text in tests, independently of the code under test."""

from __future__ import annotations


def unescape(text: str) -> str:
    """What Slack shows for ``text``: its three entities as characters."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
