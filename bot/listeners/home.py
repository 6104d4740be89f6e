"""The App Home tab: opening it shows the reviews waiting for the viewer.

The list is rebuilt on every ``app_home_opened`` rather than pushed on each change: it is cheap
(one indexed query plus the policy check), always current when someone looks, and needs no
bookkeeping of who has the tab open.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import home
from bot.failures import explain
from bot.waiting import WaitingLister, lister_for

if TYPE_CHECKING:
    from bot.review.standing import StandingApprovals

__all__ = ["WaitingLister", "error_view", "lister_for", "publish_home", "register"]

log = logging.getLogger(__name__)


def error_view(text: str) -> dict[str, Any]:
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": home.HOME_TITLE}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {text}"}},
        ],
    }


async def publish_home(
    lister: WaitingLister,
    client: AsyncWebClient,
    user: str,
    standing: StandingApprovals | None = None,
    *,
    notice: str | None = None,
) -> None:
    """Publish ``user``'s Home; a failure becomes a sentence in the tab, details in the log.
    With ``standing``, the viewer's standing approvals follow the reviews (``notice``: what
    their last click on one did)."""
    try:
        waiting = await lister.waiting_for(user)
        view = home.home_view(
            waiting, now=datetime.now(UTC), workspace_url=await lister.workspace_url()
        )
        if standing is not None:
            view["blocks"].extend(await standing.home_blocks(user, notice))
    except Exception as error:
        log.exception("could not list the reviews waiting for %s", user)
        view = error_view(explain(error))
    try:
        await client.views_publish(user_id=user, view=view)
    except Exception:
        log.exception("views.publish failed for %s", user)


def register(
    app: AsyncApp, lister: WaitingLister, standing: StandingApprovals | None = None
) -> None:
    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        user = event.get("user")
        if event.get("tab") != "home" or not isinstance(user, str):
            return  # the Messages tab is the DM; nothing to draw
        await publish_home(lister, client, user, standing)
