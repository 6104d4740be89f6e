"""Which pending reviews a person may decide: the list behind the App Home and ``/approvals``."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot import home
from bot.permissions import Approvers
from bot.policy_rules import CallPolicy
from bot.store import BotStore
from bot.visibility import Audience

if TYPE_CHECKING:
    from bot.flow import ReviewFlow

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

    def __init__(self, store: BotStore, client: AsyncWebClient, approvers: Approvers) -> None:
        self.store = store
        self.client = client
        self.approvers = approvers
        self.audience = Audience(client)
        self._workspace_url: str | None = None

    async def workspace_url(self) -> str | None:
        if self._workspace_url is None:
            try:
                reply = await self.client.auth_test()
            except Exception:
                log.warning("auth.test failed; listing reviews without links", exc_info=True)
                return None
            url = reply.get("url")
            self._workspace_url = url if isinstance(url, str) and url else None
        return self._workspace_url

    async def waiting_for(self, user: str) -> home.Waiting:
        """The viewer's reviews under the policy: approvers (users and groups) and four-eyes,
        the same checks a click would face, so nothing listed refuses them; and only from
        conversations the viewer can see. Redacted arguments are masked in every review the
        list shows; the rest are only counted, so only the shown ones are copied masked. Each
        review's policy is resolved once, for both."""
        reviews = await home.pending_reviews(self.store.pool)
        approvers = self.approvers
        mine = [
            (review, call)
            for review in reviews
            for call in [self.policy_of(review)]
            if await approvers.may_decide_with(call, user, review.escalated_to)
            and not approvers.own_call_forbidden(call, user, review.requested_by, review.requesters)
            and await self.audience.can_see(review.channel_id, user, review.requested_by)
        ]
        listed = home.waiting_from(
            [review for review, _ in mine], complete=len(reviews) < home.SCAN_LIMIT
        )
        shown = tuple(self.shown(review, call) for review, call in mine[: len(listed.shown)])
        return dataclasses.replace(listed, shown=shown)

    def policy_of(self, review: home.WaitingReview) -> CallPolicy:
        """The review's one policy, as a click would see it (``Deps.policy_of``)."""
        return self.approvers.policy.for_review(
            review.tool_name,
            review.policy_match,
            review.proposed if review.proposed is not None else review.args,
            review.edit,
            requester=review.requested_by,
            channel=review.channel_id,
            created=review.created_at,
        )

    def shown(self, review: home.WaitingReview, call: CallPolicy) -> home.WaitingReview:
        """The review as the list may show it under its policy ``call``: redacted arguments
        masked."""
        return dataclasses.replace(review, args=call.policy.redacted(review.args))


def lister_for(flow: ReviewFlow) -> WaitingLister:
    """The flow's one lister (and so one ``auth.test``), shared by App Home and ``/approvals``."""
    return flow.lister
