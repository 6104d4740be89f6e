"""The App Home tab: opening it shows the reviews waiting for the viewer.

The list is rebuilt on every ``app_home_opened`` rather than pushed on each change: it is cheap
(one indexed query plus the policy check), always current when someone looks, and needs no
bookkeeping of who has the tab open.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import home
from bot.flow import ReviewFlow, explain
from bot.visibility import Audience

log = logging.getLogger(__name__)


class WaitingLister:
    """Which pending reviews a person may decide, and the workspace URL to link them.

    A review is listed only to someone who may decide it *and* can see its conversation (a DM's
    owner, a channel's members: ``bot.visibility``), with redacted arguments masked: the list
    shows no more than the review message itself would.

    The workspace URL comes from ``auth.test`` once per process; it never changes while the
    token is valid, and a failed lookup is retried next time (the list is shown without links
    meanwhile).
    """

    def __init__(self, flow: ReviewFlow) -> None:
        self.flow = flow
        self.audience = Audience(flow.client)
        self._workspace_url: str | None = None

    async def workspace_url(self) -> str | None:
        if self._workspace_url is None:
            try:
                reply = await self.flow.client.auth_test()
            except Exception:
                log.warning("auth.test failed; listing reviews without links", exc_info=True)
                return None
            url = reply.get("url")
            self._workspace_url = url if isinstance(url, str) and url else None
        return self._workspace_url

    async def waiting_for(self, user: str) -> home.Waiting:
        """The viewer's reviews under the policy: approvers (users and groups) and four-eyes,
        the same checks a click would face, so nothing listed refuses them; and only from
        conversations the viewer can see. Redacted arguments are masked."""
        reviews = await home.pending_reviews(self.flow.store.pool)
        approvers = self.flow.approvers
        mine = [
            self.shown(review)
            for review in reviews
            if await approvers.may_decide(review.tool_name, user)
            and not approvers.own_call_forbidden(
                review.tool_name, user, review.requested_by, review.requesters
            )
            and await self.audience.can_see(review.channel_id, user, review.requested_by)
        ]
        return home.waiting_from(mine, complete=len(reviews) < home.SCAN_LIMIT)

    def shown(self, review: home.WaitingReview) -> home.WaitingReview:
        """The review as the list may show it: redacted arguments masked."""
        masked = self.flow.policy(review.tool_name).redacted(review.args)
        return dataclasses.replace(review, args=masked)


_LISTERS: weakref.WeakKeyDictionary[ReviewFlow, WaitingLister] = weakref.WeakKeyDictionary()


def lister_for(flow: ReviewFlow) -> WaitingLister:
    """One lister (and so one ``auth.test``) per flow, shared by App Home and ``/approvals``."""
    lister = _LISTERS.get(flow)
    if lister is None:
        lister = _LISTERS[flow] = WaitingLister(flow)
    return lister


def error_view(text: str) -> dict[str, Any]:
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": home.HOME_TITLE}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {text}"}},
        ],
    }


async def publish_home(flow: ReviewFlow, client: AsyncWebClient, user: str) -> None:
    """Publish ``user``'s Home; a failure becomes a sentence in the tab, details in the log."""
    lister = lister_for(flow)
    try:
        waiting = await lister.waiting_for(user)
        view = home.home_view(
            waiting, now=datetime.now(UTC), workspace_url=await lister.workspace_url()
        )
    except Exception as error:
        log.exception("could not list the reviews waiting for %s", user)
        view = error_view(explain(error))
    try:
        await client.views_publish(user_id=user, view=view)
    except Exception:
        log.exception("views.publish failed for %s", user)


def register(app: AsyncApp, flow: ReviewFlow) -> None:
    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        user = event.get("user")
        if event.get("tab") != "home" or not isinstance(user, str):
            return  # the Messages tab is the DM; nothing to draw
        await publish_home(flow, client, user)
