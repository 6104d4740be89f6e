"""People's and channels' names for the arguments a card shows, asked of Slack (``users.info``,
``conversations.info``) and kept a while.

The lookups run when a card is posted or repainted, never on the 3 s acknowledgement path, and
even there they are bounded: all of a card's lookups run at once, each given `LOOKUP_SECONDS`,
and at most `MAX_LOOKUPS` per card. Whatever Slack refuses, or does not answer in time, is shown
as its id (`bot.readable`), and remembered as unknown for `MISS_SECONDS` so a slow or failing
Slack does not slow every card. Both caches are bounded (`MAX_ENTRIES`, least recently used
first out) and expire (`HIT_SECONDS`), so a renamed person reads right again soon.

Only arguments as people may see them are looked up: the caller passes the shown (redacted)
request, so a redacted value is never sent to Slack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cachetools import TTLCache

from bot.readable import Names, wanted_ids
from graph import ReviewRequest

log = logging.getLogger(__name__)

HIT_SECONDS = 600.0
MISS_SECONDS = 60.0
LOOKUP_SECONDS = 1.5
MAX_LOOKUPS = 40
MAX_ENTRIES = 5000

Lookup = Callable[[str], Awaitable[str | None]]


def _body(reply: Any) -> Mapping[str, Any]:
    """A Web API reply as a mapping (the SDK's response object keeps it in ``data``)."""
    data = getattr(reply, "data", reply)
    return data if isinstance(data, Mapping) else {}


def user_name(reply: Any) -> str | None:
    """The name Slack shows for a person: display name, else real name, else handle."""
    user = _body(reply).get("user")
    if not isinstance(user, Mapping):
        return None
    profile = user.get("profile")
    profile = profile if isinstance(profile, Mapping) else {}
    for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name")):
        if isinstance(name, str) and name.strip():
            return name.strip()
    handle = user.get("name")
    return handle if isinstance(handle, str) and handle else None


def channel_name(reply: Any) -> str | None:
    """A channel's name; None for a direct message, which has none."""
    found = _body(reply).get("channel")
    if not isinstance(found, Mapping) or found.get("is_im"):
        return None
    name = found.get("name")
    return name if isinstance(name, str) and name else None


class NameCache:
    """Names by id, one cache per kind (users, channels), over a Slack Web API client."""

    def __init__(
        self,
        client: Any,
        *,
        hit_seconds: float = HIT_SECONDS,
        miss_seconds: float = MISS_SECONDS,
        timeout: float = LOOKUP_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.calls = 0  # Slack lookups made, for tests and curiosity
        self._hits: TTLCache[tuple[str, str], str] = TTLCache(max_entries, hit_seconds, clock)
        self._misses: TTLCache[tuple[str, str], bool] = TTLCache(max_entries, miss_seconds, clock)

    async def names_for(self, request: ReviewRequest) -> Names:
        """The names a card of ``request`` (already redacted) needs; never raises."""
        try:
            users, channels = wanted_ids(
                request["tool_call"]["args"], request["tool"]["args_schema"]
            )
            people, rooms = await asyncio.gather(
                self.resolve("user", users, self._user),
                self.resolve("channel", channels, self._channel),
            )
            return Names(users=people, channels=rooms)
        except Exception:
            log.exception("looking up names failed; showing ids")
            return Names()

    async def resolve(self, kind: str, ids: list[str], lookup: Lookup) -> dict[str, str]:
        """Names for ``ids``: cached ones at once, the rest asked in parallel, each bounded."""
        found = {i: self._hits[(kind, i)] for i in ids if (kind, i) in self._hits}
        unknown = [i for i in ids if i not in found and (kind, i) not in self._misses]
        asked = unknown[:MAX_LOOKUPS]
        answers = await asyncio.gather(*(self._bounded(lookup, i) for i in asked))
        for item, name in zip(asked, answers, strict=True):
            if name:
                self._hits[(kind, item)] = found[item] = name
            else:
                self._misses[(kind, item)] = True
        return found

    async def _bounded(self, lookup: Lookup, item: str) -> str | None:
        self.calls += 1
        try:
            return await asyncio.wait_for(lookup(item), self.timeout)
        except Exception as error:  # refused, timed out, unreachable: the id is shown
            reason = getattr(error, "response", {}) or {}
            log.info("no name for %s: %s", item, reason.get("error") or type(error).__name__)
            return None

    async def _user(self, user_id: str) -> str | None:
        return user_name(await self.client.users_info(user=user_id))

    async def _channel(self, channel_id: str) -> str | None:
        return channel_name(await self.client.conversations_info(channel=channel_id))
