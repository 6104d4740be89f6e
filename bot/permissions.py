"""Who may decide a tool's reviews: configured users and user groups, per tool.

Group membership is looked up through ``usergroups.users.list`` and cached briefly, so a click
is not slowed by a Web API call each time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


class Approvers:
    def __init__(
        self,
        rules: Mapping[str, frozenset[str]],
        client: AsyncWebClient,
        cache_seconds: float = 60.0,
    ) -> None:
        self.rules = rules
        self.client = client
        self.cache_seconds = cache_seconds
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    def allowed_for(self, tool: str) -> frozenset[str] | None:
        """The ids allowed to decide ``tool``; None means anyone who can see the message."""
        return self.rules.get(tool, self.rules.get("*"))

    async def may_decide(self, tool: str, user: str) -> bool:
        allowed = self.allowed_for(tool)
        if allowed is None or user in allowed:
            return True
        for group in sorted(i for i in allowed if i.startswith("S")):
            if user in await self._members(group):
                return True
        return False

    async def _members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            reply = await self.client.usergroups_users_list(usergroup=group)
            members: frozenset[str] = frozenset(reply.get("users", []))
        except Exception:  # fail closed: an unreadable group grants nothing
            log.warning("could not read members of user group %s", group, exc_info=True)
            return frozenset()
        self._groups[group] = (time.monotonic(), members)
        return members

    def describe(self, tool: str) -> str:
        allowed = self.allowed_for(tool) or frozenset()
        names = [f"user group `{i}`" if i.startswith("S") else f"<@{i}>" for i in sorted(allowed)]
        return ", ".join(names) or "nobody"
