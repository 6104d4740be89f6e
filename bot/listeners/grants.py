"""Standing approvals: the card's *Approve + allow similar…* button and its modal, and the App
Home's *Revoke*. Each acknowledges first (3 s); the modal is validated inside its ack."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import grant_blocks
from bot.blocks import GRANT
from bot.listeners.actions import click_from
from bot.listeners.home import publish_home
from bot.listeners.views import values_of
from bot.review.effects import Click
from bot.review.standing import StandingApprovals
from bot.waiting import WaitingLister
from graph import Approve

log = logging.getLogger(__name__)

LOST = "This form lost its review; please use the buttons again."


def register(app: AsyncApp, standing: StandingApprovals, lister: WaitingLister) -> None:
    @app.action(GRANT)
    async def grant(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        click = click_from(body, action)
        trigger = body.get("trigger_id")
        if click is None or not isinstance(trigger, str):
            log.warning("ignored a malformed grant click")
            return
        await standing.open_modal(click, trigger)

    @app.view(grant_blocks.GRANT_CALLBACK)
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = (body.get("user") or {}).get("id")
        opened = grant_blocks.parse_metadata(view.get("private_metadata"))
        if not isinstance(user, str) or opened is None:
            await ack(response_action="errors", errors={grant_blocks.DURATION_BLOCK: LOST})
            return
        ref, version = opened
        click = Click(user=user, ref=ref)
        try:
            checked = await standing.check_submission(click, version, values_of(view))
        except Exception:
            log.exception("checking a grant submission for %s failed", ref)
            checked = {grant_blocks.DURATION_BLOCK: "Something went wrong; please try again."}
        if isinstance(checked, dict):
            await ack(response_action="errors", errors=checked)
            return
        await ack()
        review, terms = checked
        await standing.clicks.decide(click, Approve(user), review, offer=terms)

    @app.action(grant_blocks.REVOKE)
    async def revoke(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        value = action.get("value")
        if not isinstance(user, str) or not isinstance(value, str) or not value.isdigit():
            log.warning("ignored a malformed Revoke click")
            return
        try:
            notice = await standing.revoke(user, int(value))
        except Exception:
            log.exception("revoking standing approval %s failed", value)
            notice = "I could not revoke it just now; please try again."
        await publish_home(lister, client, user, standing, notice=notice)
