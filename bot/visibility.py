"""Who can see a conversation, so a list of reviews never shows one to someone who cannot.

A review's arguments are as private as the conversation they came from. A DM with the bot is
seen by its owner only (``conversations.info`` names them); any other conversation (public or
private channel, group DM) by its members (``conversations.members``). Answers are cached
briefly, like user groups in ``bot.permissions``, so opening the Home tab does not cost a Web
API call per review; an unreadable conversation is seen by nobody (fail closed) and is asked
again next time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

MEMBERS_PAGE = 1000  # Slack's largest page for conversations.members
MAX_PAGES = 50  # members beyond 50,000 are not read, so they see nothing (fail closed)


def is_dm(channel_id: str) -> bool:
    """Slack's DM ids start with D (channels with C, private ones and group DMs with C or G)."""
    return channel_id.startswith("D")


class Audience:
    def __init__(self, client: AsyncWebClient, cache_seconds: float = 60.0) -> None:
        self.client = client
        self.cache_seconds = cache_seconds
        self._seen_by: dict[str, tuple[float, frozenset[str]]] = {}

    async def can_see(self, channel_id: str, user: str, requested_by: str | None = None) -> bool:
        """Whether ``user`` can read ``channel_id``, where ``requested_by`` asked for a review.

        Only a DM's owner can write in it, so a DM review asked for by someone else is not
        the viewer's DM: answered without a Web API call (one DM per person is then asked
        about, not one per review). The owner is still confirmed by Slack.
        """
        if is_dm(channel_id) and user != requested_by:
            return False
        return user in await self.seen_by(channel_id)

    async def seen_by(self, channel_id: str) -> frozenset[str]:
        """The people who can read ``channel_id``: a DM's owner, or a conversation's members."""
        cached = self._seen_by.get(channel_id)
        if cached and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            if is_dm(channel_id):
                people = await self._dm_owner(channel_id)
            else:
                people = await self._members(channel_id)
        except Exception:  # fail closed, and ask again next time
            log.warning("could not read who can see conversation %s", channel_id, exc_info=True)
            return frozenset()
        self._seen_by[channel_id] = (time.monotonic(), people)
        return people

    async def _dm_owner(self, channel_id: str) -> frozenset[str]:
        reply = await self.client.conversations_info(channel=channel_id)
        channel: Any = reply.get("channel") or {}
        owner = channel.get("user") if isinstance(channel, dict) else None
        return frozenset({owner}) if isinstance(owner, str) and owner else frozenset()

    async def _members(self, channel_id: str) -> frozenset[str]:
        members: set[str] = set()
        cursor = ""
        for _ in range(MAX_PAGES):
            reply = await self.client.conversations_members(
                channel=channel_id, limit=MEMBERS_PAGE, cursor=cursor or None
            )
            members.update(m for m in reply.get("members") or [] if isinstance(m, str))
            metadata: Any = reply.get("response_metadata") or {}
            cursor = metadata.get("next_cursor") or "" if isinstance(metadata, dict) else ""
            if not cursor:
                break
        return frozenset(members)
