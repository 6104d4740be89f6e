"""Everything the bot says to Slack apart from deciding: posting, updating every copy of a
message, ephemeral notes (said once per repeat), reactions, and finding a message again.

Each call is best effort: a failure is logged and reported as a value (None, False), never
raised, because a Slack hiccup must not undo a decision. What to say is decided elsewhere
(``bot.blocks`` builds it; the review lifecycle decides when).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.names import NameCache
from bot.repeats import RepeatFilter
from bot.threads import SlackThread

log = logging.getLogger(__name__)

WORKING_REACTION = "eyes"
REVIEW_EVENT = "approval_review"
REPLY_PAGES = 10  # a thread longer than 2,000 messages gets a second copy rather than a search


def review_metadata(ref: str) -> dict[str, Any]:
    """Message metadata naming the review a message shows, so it can be found again."""
    return {"event_type": REVIEW_EVENT, "event_payload": {"ref": ref}}


def review_ref_of(message: Mapping[str, Any]) -> str | None:
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != REVIEW_EVENT:
        return None
    payload = metadata.get("event_payload")
    ref = payload.get("ref") if isinstance(payload, Mapping) else None
    return ref if isinstance(ref, str) else None


class SlackOut:
    """The bot's voice in Slack, over one Web API client."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self.names = NameCache(client)  # names for the arguments cards show
        self._bot_user_id: str | None = None
        self._told = RepeatFilter()

    async def bot_user_id(self) -> str | None:
        """The bot's own user id (to strip its mention), asked of Slack once."""
        if self._bot_user_id is None:
            reply = await self.client.auth_test()
            self._bot_user_id = reply.get("user_id")
        return self._bot_user_id

    async def post(
        self,
        thread: SlackThread,
        body: list[dict[str, Any]],
        text: str,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> str | None:
        """Post in the thread; the new message's ts, or None if Slack refused."""
        return await self._post(thread.channel_id, thread.thread_ts, body, text, metadata)

    async def post_in_channel(
        self,
        channel: str,
        body: list[dict[str, Any]],
        text: str,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> str | None:
        """Post at the top of a channel (a routed review card); its ts, or None."""
        return await self._post(channel, None, body, text, metadata)

    async def _post(
        self,
        channel: str,
        thread_ts: str | None,
        body: list[dict[str, Any]],
        text: str,
        metadata: dict[str, Any] | None,
    ) -> str | None:
        """One ``chat.postMessage`` (no unfurls: a card shows only what it says); a refusal
        is logged and answered with None, never raised."""
        try:
            reply = await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                blocks=body,
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata,
            )
        except Exception:
            log.exception("chat.postMessage failed in %s (thread %s)", channel, thread_ts)
            return None
        return str(reply.get("ts")) if reply.get("ts") else None

    async def find_channel_review(self, channel: str, ref: str, oldest: str) -> str | None:
        """The ts of our message at the top of ``channel`` (a routed card) that carries ``ref``
        in its metadata, posted after ``oldest``; None when there is none or Slack cannot say
        (then it is posted again, as in :meth:`find_review_message`)."""
        me = await self.bot_user_id()
        cursor: str | None = None
        for _ in range(REPLY_PAGES):
            try:
                page = await self.client.conversations_history(
                    channel=channel,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            except Exception:
                log.warning("could not look for review %s in %s", ref, channel)
                return None
            for message in page.get("messages") or []:
                if message.get("user") == me and review_ref_of(message) == ref:
                    log.info("review %s was shown before; adopting its message", ref)
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                return None
        return None

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message (``chat.getPermalink``), or None if Slack cannot give one."""
        try:
            reply = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except Exception:
            log.warning("chat.getPermalink failed for %s in %s", ts, channel, exc_info=True)
            return None
        link = reply.get("permalink")
        return link if isinstance(link, str) and link else None

    async def say(self, thread: SlackThread, text: str) -> None:
        await self.post(thread, blocks.notice_blocks(text), text)

    async def update_all(
        self,
        channel: str,
        messages: Sequence[str],
        body: list[dict[str, Any]],
        text: str,
        *,
        what: str,
    ) -> bool:
        """chat.update every copy (with the SDK's retries); True if every one shows it now.
        A copy someone deleted is nothing to paint."""
        painted = [await self._update(channel, ts, body, text, what) for ts in messages]
        return all(painted)

    async def _update(
        self, channel: str, ts: str, body: list[dict[str, Any]], text: str, what: str
    ) -> bool:
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)
        except SlackApiError as error:
            if error.response.get("error") == "message_not_found":
                return True
            log.exception("chat.update failed for review %s; will retry", what)
            return False
        except Exception:
            log.exception("chat.update failed for review %s; will retry", what)
            return False
        return True

    async def ephemeral(self, user: str, channel: str, text: str, *, thread_ts: str | None) -> None:
        """A note only ``user`` sees (ask :meth:`first_time` first, so a repeat is not said)."""
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts
            )
        except Exception:
            log.exception("chat.postEphemeral failed for %s", user)

    def first_time(self, key: Hashable) -> bool:
        """Whether a note with this key is said now (and counted as said): the same note to
        the same person about the same review is said once a minute at most (`RepeatFilter`),
        so clicking a refused button again does not stack identical refusals."""
        return self._told.first(key)

    async def react(self, channel: str, ts: str, *, add: bool) -> None:
        """Show (or stop showing) that a message is being worked on; a nicety, never fatal."""
        try:
            if add:
                await self.client.reactions_add(
                    channel=channel, timestamp=ts, name=WORKING_REACTION
                )
            else:
                await self.client.reactions_remove(
                    channel=channel, timestamp=ts, name=WORKING_REACTION
                )
        except Exception:  # progress is a nicety; never fail a turn over it
            log.debug("reaction %s failed", "add" if add else "remove", exc_info=True)

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self.client.views_open(trigger_id=trigger_id, view=view)

    async def find_review_message(self, thread: SlackThread, ref: str) -> str | None:
        """The ts of our message in the thread that carries ``ref`` in its metadata, if any.

        None when there is none or Slack cannot say: then the review is posted (again),
        since a second copy is harmless and a review nobody sees is not.
        """
        me = await self.bot_user_id()
        cursor: str | None = None
        for _ in range(REPLY_PAGES):
            try:
                page = await self.client.conversations_replies(
                    channel=thread.channel_id,
                    ts=thread.thread_ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            except Exception:
                log.warning("could not look for review %s in %s", ref, thread.thread_id)
                return None
            for message in page.get("messages") or []:
                if message.get("user") == me and review_ref_of(message) == ref:
                    log.info("review %s was shown before; adopting its message", ref)
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                return None
        return None
