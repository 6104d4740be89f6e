"""Validate Block Kit the way Slack's SDK does offline, plus the limits it does not check."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100


def assert_valid_blocks(blocks: list[dict[str, Any]], limit: int = MESSAGE_BLOCKS) -> None:
    assert 0 < len(blocks) <= limit, f"{len(blocks)} blocks (limit {limit})"
    parsed = Block.parse_all(blocks)
    assert len(parsed) == len(blocks), "a block type slack_sdk does not know"
    for block in parsed:
        block.validate_json()
    for raw in blocks:
        for element in raw.get("elements") or []:
            if isinstance(element, dict) and element.get("type") == "button":
                assert len(element.get("value", "")) <= 2000
                assert len(element["text"]["text"]) <= 75
        if raw.get("type") == "section" and raw.get("text"):
            assert len(raw["text"]["text"]) <= 3000


def assert_valid_view(view: dict[str, Any]) -> None:
    parsed = View(**view)
    parsed.validate_json()
    assert len(view["blocks"]) <= MODAL_BLOCKS
    assert len(view.get("private_metadata", "")) <= 3000
    assert_valid_blocks(view["blocks"], MODAL_BLOCKS)
