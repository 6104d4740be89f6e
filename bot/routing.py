"""Where a review's card is posted: in the conversation, or routed to a channel.

A tool's policy may send every review to a channel (``channel``), and a review asked for in a
DM by someone who may not decide it goes to the tool's ``review_channel``: in the DM nobody who
may decide would ever see it. A routed card links back to the conversation, and the
conversation's thread links to the card; the result and the agent's reply still go to the
conversation (``bot.turns``), and every copy of the card is painted as decided
(``bot.review.effects``). A click on a routed card faces the same admission as any other.

Channel names are resolved to ids through ``conversations.list`` and cached for the process;
a name that cannot be found is said at start-up (:meth:`Router.check`) and, at run time, in the
conversation, where the review then waits instead (failing closed: it still needs an approver,
and expires like any other).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.mrkdwn import escape
from bot.permissions import Approvers
from bot.policy import Policy
from bot.policy_rules import CallPolicy
from bot.store import ReviewRow
from bot.threads import SlackThread
from bot.visibility import is_dm
from graph import ReviewRequest

log = logging.getLogger(__name__)

LIST_PAGES = 20  # 20,000 channels at most are searched for a name
MISS_RETRY_SECONDS = 60.0  # a name not found is asked again after this long


class ChannelDirectory:
    """Channel names (``#name``) to ids, asked of Slack once per name and cached; an id is
    its own answer. A name not found (or Slack unreachable) is asked again a minute later,
    so inviting the bot or creating the channel takes effect without a restart."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._ids: dict[str, str] = {}
        self._misses: dict[str, float] = {}

    async def resolve(self, spec: str) -> str | None:
        if not spec.startswith("#"):
            return spec
        name = spec[1:]
        if name in self._ids:
            return self._ids[name]
        missed = self._misses.get(name)
        if missed is not None and time.monotonic() - missed < MISS_RETRY_SECONDS:
            return None
        found = await self._look_up(name)
        if found is None:
            self._misses[name] = time.monotonic()
        else:
            self._ids[name] = found
        return found

    async def exists(self, spec: str) -> bool:
        """Start-up: a name resolves, an id names a channel the bot can see
        (``conversations.info``)."""
        channel = await self.resolve(spec)
        if channel is None or spec.startswith("#"):
            return channel is not None
        try:
            await self.client.conversations_info(channel=channel)
        except Exception:
            log.warning("could not find channel %s", spec, exc_info=True)
            return False
        return True

    async def _look_up(self, name: str) -> str | None:
        cursor: str | None = None
        for _ in range(LIST_PAGES):
            try:
                page = await self.client.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                )
            except Exception:
                log.warning("could not list channels to find #%s", name, exc_info=True)
                return None
            for channel in page.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name") == name:
                    return str(channel["id"])
            metadata: Any = page.get("response_metadata") or {}
            cursor = metadata.get("next_cursor") or None if isinstance(metadata, dict) else None
            if not cursor:
                return None
        return None


@dataclass(frozen=True)
class Route:
    """Where a card goes: ``channel`` (None: the conversation) and, when the wanted place
    could not be used, the sentence that says so in the conversation."""

    channel: str | None = None
    problem: str | None = None


def not_found_text(spec: str, tool: str) -> str:
    return (
        f"I could not find the channel {escape(spec)} where `{escape(tool)}` reviews go (is "
        "the bot invited to it?), so this review waits here."
    )


def no_review_channel_text(tool: str) -> str:
    return (
        f"You may not decide `{escape(tool)}` calls yourself, and nobody who may can see this "
        "DM: the policy names no `review_channel` for this tool, so this review waits here "
        "until it expires. Ask whoever runs the bot to set one, or ask in a channel instead."
    )


def mentions(ids: Iterable[str]) -> str:
    """People and user groups as mentions that ping them, in a stable order."""
    return " ".join(f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>" for i in sorted(ids))


def card_thread_of(review: ReviewRow) -> SlackThread:
    """The card's thread: under a routed card, else the conversation's (where the card is)."""
    if review.card_channel and review.message_ts:
        return SlackThread(review.team_id, review.card_channel, review.message_ts)
    return SlackThread(review.team_id, review.channel_id, review.thread_ts)


def safe_link(url: str | None) -> str | None:
    """A link that can go into ``<url|label>``: http(s), none of the characters that end it."""
    if url and url.startswith(("https://", "http://")) and not any(c in url for c in "<>| \n"):
        return url
    return None


def waits_in_text(channel: str, card_link: str | None) -> str:
    """The conversation's pointer to a routed card."""
    where = f"<#{channel}>"
    card_link = safe_link(card_link)
    link = f" <{card_link}|Open the review>." if card_link else ""
    return f":arrow_right: This review waits for a decision in {where}.{link}"


def conversation_block(link: str | None, channel: str) -> dict[str, Any]:
    """The context block on a routed card: where the call was asked for (a pure builder)."""
    place = "a direct message" if is_dm(channel) else f"<#{channel}>"
    link = safe_link(link)
    text = f"Asked in <{link}|this conversation> ({place})" if link else f"Asked in {place}"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def with_conversation(
    body: list[dict[str, Any]], link: str | None, channel: str
) -> list[dict[str, Any]]:
    """A routed card's blocks: the conversation link just before the buttons (or last)."""
    block = conversation_block(link, channel)
    if body and body[-1].get("type") == "actions":
        return [*body[:-1], block, body[-1]]
    return [*body, block]


class Router:
    def __init__(self, directory: ChannelDirectory, approvers: Approvers) -> None:
        self.directory = directory
        self.approvers = approvers

    async def route(self, thread: SlackThread, request: ReviewRequest, call: CallPolicy) -> Route:
        """The call's ``channel`` if its policy (rule or tool) has one; else, for a DM whose
        requester may not decide, its ``review_channel`` (or the sentence saying there is
        none); else here."""
        tool, policy = request["tool_call"]["name"], call.policy
        wanted = policy.channel
        if wanted is None and is_dm(thread.channel_id):
            if await self._requester_may_decide(call, request):
                return Route()
            if policy.review_channel is None:
                return Route(problem=no_review_channel_text(tool))
            wanted = policy.review_channel
        if wanted is None:
            return Route()
        channel = await self.directory.resolve(wanted)
        if channel is None:
            log.error(
                "review channel %s for %s not found; the review waits in %s",
                wanted,
                tool,
                thread.thread_id,
            )
            return Route(problem=not_found_text(wanted, tool))
        return Route() if channel == thread.channel_id else Route(channel)

    async def _requester_may_decide(self, call: CallPolicy, request: ReviewRequest) -> bool:
        requester = request.get("requested_by")
        if not requester:
            return False
        forbidden = self.approvers.own_call_forbidden(
            call, requester, requester, request.get("requesters")
        )
        return not forbidden and await self.approvers.may_decide(call, requester)

    async def check(self, policy: Policy, tools: Iterable[str]) -> list[str]:
        """Start-up: every channel the policy names is found, and every tool a DM requester
        may be unable to decide has somewhere to send it. The problems, each logged."""
        problems: list[str] = []
        named = {name: policy.for_tool(name) for name in tools}
        specs = {
            spec
            for tool in (policy.defaults, *named.values())
            for spec in (tool.channel, tool.review_channel)
            if spec
        }
        for spec in sorted(specs):
            if not await self.directory.exists(spec):
                problems.append(
                    f"policy: channel {spec} not found (create it, or invite the bot if it is "
                    "private); its reviews will wait in their conversations"
                )
        stranded = sorted(
            name
            for name, tool in named.items()
            if tool.mode == "review"
            and (tool.approvers is not None or tool.four_eyes)
            and tool.channel is None
            and tool.review_channel is None
        )
        if stranded:
            problems.append(
                "policy: no review_channel for "
                + ", ".join(stranded)
                + ": a DM review by someone who may not decide it waits in the DM, where no "
                "approver sees it (set review_channel in [defaults] or the tool's table)"
            )
        for problem in problems:
            log.warning("%s", problem)
        return problems
