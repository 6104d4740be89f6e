"""Who may decide a review, under the policy: approvers (users and user groups) and four-eyes.

Group membership is looked up through ``usergroups.users.list`` and cached briefly, so a click
is not slowed by a Web API call each time; an unreadable group grants nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import Policy

log = logging.getLogger(__name__)


class Approvers:
    def __init__(self, policy: Policy, client: AsyncWebClient, cache_seconds: float = 60.0) -> None:
        self.policy = policy
        self.client = client
        self.cache_seconds = cache_seconds
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    def allowed_for(self, tool: str) -> frozenset[str] | None:
        """The ids allowed to decide ``tool``; None means anyone who can see the message."""
        return self.policy.for_tool(tool).approvers

    async def may_decide(self, tool: str, user: str) -> bool:
        allowed = self.allowed_for(tool)
        if allowed is None or user in allowed:
            return True
        for group in sorted(i for i in allowed if i.startswith("S")):
            if user in await self._members(group):
                return True
        return False

    def own_call_forbidden(
        self,
        tool: str,
        user: str,
        requested_by: str | None,
        requesters: Iterable[str] | None = None,
    ) -> bool:
        """Four-eyes: nobody whose words led to a call may approve it, neither the author of
        the turn's message (``requested_by``) nor anyone else whose message is in the
        conversation before it (``requesters``): otherwise Alice asks, a friend says "yes",
        and Alice approves her own request."""
        if not self.policy.for_tool(tool).four_eyes:
            return False
        return user == requested_by or user in set(requesters or ())

    async def _members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            reply = await self.client.usergroups_users_list(usergroup=group)
            members: frozenset[str] = frozenset(reply.get("users", []))
        except Exception:  # fail closed
            log.warning("could not read members of user group %s", group, exc_info=True)
            return frozenset()
        self._groups[group] = (time.monotonic(), members)
        return members

    def describe(self, tool: str) -> str:
        allowed = self.allowed_for(tool) or frozenset()
        names = [f"user group `{i}`" if i.startswith("S") else f"<@{i}>" for i in sorted(allowed)]
        return ", ".join(names) or "nobody"
