"""Who may decide a review, under the policy: approvers (users and user groups) and four-eyes.

Group membership is looked up through ``usergroups.users.list`` and cached briefly, so a click
is not slowed by a Web API call each time; an unreadable group grants nothing. Refusals name
groups by their handle (``usergroups.list``) and people by name (``users.info``), both cached
the same way; an unreadable name falls back to the id (groups) or "someone" (people).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from slack_sdk.web.async_client import AsyncWebClient

from bot.mrkdwn import escape, user_mention
from bot.policy import Policy
from bot.policy_rules import CallPolicy
from bot.review import rules
from bot.store import ReviewRow

log = logging.getLogger(__name__)
LOOKUP_SECONDS = 1.0  # names are a nicety: a modal error must still answer within Slack's 3 s


class Approvers:
    def __init__(self, policy: Policy, client: AsyncWebClient, cache_seconds: float = 60.0) -> None:
        self.policy = policy
        self.client = client
        self.cache_seconds = cache_seconds
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._handles: tuple[float, dict[str, str]] | None = None
        self._names: dict[str, tuple[float, str | None]] = {}

    async def may_decide(self, call: CallPolicy, user: str) -> bool:
        """Whether ``user`` may decide a call under its policy: every approvers condition of
        it must admit them (normally one; more when it failed closed or an edit moved it
        under another rule, see :mod:`bot.policy_rules`)."""
        for allowed in call.approver_conditions:
            if not await self.is_among(allowed, user):
                return False
        return True

    async def may_decide_review(self, call: CallPolicy, review: ReviewRow, user: str) -> bool:
        """:meth:`may_decide`, and, once the review escalated (``escalated_at``, set once and
        never cleared), its escalation targets too: they join its approvers from then on."""
        return await self.may_decide_with(call, user, review.escalated_to)

    async def may_decide_with(
        self, call: CallPolicy, user: str, escalated_to: frozenset[str]
    ) -> bool:
        """:meth:`may_decide`, or among ``escalated_to`` (an escalated review's targets)."""
        if await self.may_decide(call, user):
            return True
        return bool(escalated_to) and await self.is_among(escalated_to, user)

    async def is_among(self, allowed: frozenset[str] | None, user: str) -> bool:
        """Named, or in a named group; None names everyone, an empty set nobody."""
        if rules.named_approver(allowed, user):
            return True
        for group in rules.approver_groups(allowed):
            if user in await self._members(group):
                return True
        return False

    def own_call_forbidden(
        self,
        call: CallPolicy,
        user: str,
        requested_by: str | None,
        requesters: Iterable[str] | None = None,
    ) -> bool:
        """Four-eyes under the call's policy (see :func:`bot.review.rules.four_eyes_forbids`)."""
        return rules.four_eyes_forbids(call.policy.four_eyes, user, requested_by, requesters)

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

    def _fresh(self, at: float) -> bool:
        return time.monotonic() - at < self.cache_seconds

    async def group_handles(self) -> dict[str, str]:
        """User group id -> handle (``approvers``); empty when Slack cannot tell us."""
        if self._handles and self._fresh(self._handles[0]):
            return self._handles[1]
        try:
            reply = await asyncio.wait_for(self.client.usergroups_list(), LOOKUP_SECONDS)
            groups = reply.get("usergroups") or []
            handles = {str(g["id"]): str(g["handle"]) for g in groups if g.get("handle")}
        except Exception:  # cached too: a missing scope should not cost a call per click
            log.warning("could not list user groups", exc_info=True)
            handles = {}
        self._handles = (time.monotonic(), handles)
        return handles

    async def user_name(self, user: str) -> str | None:
        """A person's display name (``users.info``), or None when it cannot be read."""
        cached = self._names.get(user)
        if cached and self._fresh(cached[0]):
            return cached[1]
        try:
            reply = await asyncio.wait_for(self.client.users_info(user=user), LOOKUP_SECONDS)
            profile = reply.get("user") or {}
            details = profile.get("profile") or {}
            name = details.get("display_name") or profile.get("name") or profile.get("real_name")
        except Exception:  # cached too, like a group list that failed
            log.warning("could not read the name of %s", user, exc_info=True)
            name = None
        self._names[user] = (time.monotonic(), str(name) if name else None)
        return self._names[user][1]

    async def user_names(self, users: list[str]) -> dict[str, str]:
        names = {user: await self.user_name(user) for user in users}
        return {user: name for user, name in names.items() if name}

    async def describe(self, call: CallPolicy, also: frozenset[str] = frozenset()) -> str:
        """Who may decide a call (and ``also``: an escalated review's targets), in mrkdwn:
        people as mentions, groups as ``@handle``; with several conditions, each (someone
        must be in all of them)."""
        sets = [(allowed or frozenset()) | also for allowed in call.approver_conditions]
        ids = frozenset().union(*sets)
        handles = await self.group_handles() if any(i.startswith("S") for i in ids) else {}

        def one(who: str) -> str:
            if not who.startswith("S"):
                return user_mention(who)
            handle = handles.get(who)
            return f"@{escape(handle)}" if handle else f"user group `{escape(who)}`"

        words = [", ".join(one(who) for who in sorted(allowed)) or "nobody" for allowed in sets]
        if len(words) == 1:
            return words[0]
        return "someone who is one of " + " and one of ".join(words)
