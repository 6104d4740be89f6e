"""Modal submissions. Validation answers inside the acknowledgement (``response_action:
errors``), so a bad value is shown under its field and nothing resumes; a valid one closes the
modal and the decision is applied after the ack."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import modals
from bot.blocks import parse_button_value
from bot.review.clicks import Clicks
from bot.review.effects import Click
from bot.review.vocabulary import ModalKind


def first_input(view: dict[str, Any]) -> str:
    for block in view.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "input" and block.get("block_id"):
            return str(block["block_id"])
    return modals.FEEDBACK_BLOCK


def values_of(view: dict[str, Any]) -> dict[str, Any]:
    values = (view.get("state") or {}).get("values")
    return values if isinstance(values, dict) else {}


def register(app: AsyncApp, clicks: Clicks) -> None:
    async def submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], kind: ModalKind
    ) -> None:
        user = (body.get("user") or {}).get("id")
        metadata = view.get("private_metadata")
        ref, shown = parse_button_value(metadata) if isinstance(metadata, str) else ("", 0)
        if not isinstance(user, str) or not ref:
            await ack(
                response_action="errors",
                errors={
                    first_input(view): "This form lost its review; please use the buttons again."
                },
            )
            return
        click = Click(user=user, ref=ref, shown_version=shown if kind == "edit" else None)
        checked = await clicks.check_submission(click, kind, values_of(view), first_input(view))
        if isinstance(checked, dict):
            await ack(response_action="errors", errors=checked)
            return
        await ack()
        review, decision = checked
        await clicks.decide(click, decision, review)

    @app.view(modals.EDIT_CALLBACK)
    async def on_edit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await submitted(ack, body, view, "edit")

    @app.view(modals.FEEDBACK_CALLBACK)
    async def on_feedback(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await submitted(ack, body, view, "feedback")
