"""Modal submissions. Validation answers inside the acknowledgement (``response_action:
errors``), so a bad value is shown under its field and nothing resumes; a valid one closes the
modal and the decision is applied after the ack."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import modals
from bot.flow import Click, ReviewFlow
from bot.store import ReviewRow

log = logging.getLogger(__name__)


async def _review_for(
    flow: ReviewFlow, body: dict[str, Any], view: dict[str, Any], first_block: str
) -> tuple[Click, ReviewRow] | dict[str, str]:
    user = (body.get("user") or {}).get("id")
    ref = view.get("private_metadata")
    if not isinstance(user, str) or not isinstance(ref, str) or not ref:
        return {first_block: "This form is missing its review; please use the buttons again."}
    click = Click(user=user, ref=ref)
    review = await flow.admissible(click)
    if isinstance(review, str):
        return {first_block: _plain(review)}
    return click, review


def _plain(text: str) -> str:
    """Modal errors are plain text: drop mrkdwn markers and mention syntax."""
    for token in ("*", "`", "_"):
        text = text.replace(token, "")
    return text[:500]


def _values(view: dict[str, Any]) -> dict[str, Any]:
    values = (view.get("state") or {}).get("values")
    return values if isinstance(values, dict) else {}


def register(app: AsyncApp, flow: ReviewFlow) -> None:
    @app.view(modals.EDIT_CALLBACK)
    async def on_edit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        found = await _review_for(flow, body, view, _first_input(view))
        if isinstance(found, dict):
            await ack(response_action="errors", errors=found)
            return
        click, review = found
        parsed = modals.parse_edit(review.request, _values(view))
        if parsed.errors:
            await ack(response_action="errors", errors=parsed.errors)
            return
        decision = {"action": "update", "data": parsed.args}
        refused = await flow.service.check(review.thread_id, review.interrupt_id, decision)
        if refused is not None:
            block = modals.error_block_for(refused.argument, review.request)
            await ack(response_action="errors", errors={block: _plain(refused.message)})
            return
        await ack()
        await flow.decide(click, "update", parsed.args, review)

    @app.view(modals.FEEDBACK_CALLBACK)
    async def on_feedback(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        found = await _review_for(flow, body, view, modals.FEEDBACK_BLOCK)
        if isinstance(found, dict):
            await ack(response_action="errors", errors=found)
            return
        click, review = found
        text, errors = modals.parse_feedback(_values(view))
        if errors or text is None:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        await flow.decide(click, "feedback", text, review)


def _first_input(view: dict[str, Any]) -> str:
    for block in view.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "input" and block.get("block_id"):
            return str(block["block_id"])
    return modals.FEEDBACK_BLOCK
