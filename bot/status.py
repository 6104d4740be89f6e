"""The thread's status line, telling the truth about the agent (``assistant.threads.setStatus``).

While the agent runs, the thread says it is working; while it waits for a review, who may
decide it; afterwards the status is cleared (an empty status). Slack clears a status itself
when the app posts in the thread, so the waiting status is set after the review card is
posted, and Slack removes any status after two minutes without a message: the card itself
then says who may decide, as always.

``assistant.threads.setStatus`` takes ``chat:write`` (Slack's changelog of 2026-03-05), so it
works in channels as in the assistant view. A workspace that answers it with
``unknown_method``, ``not_allowed``, ``method_deprecated`` or ``missing_scope`` is remembered
and gets today's ``:eyes:`` reaction on the person's message instead. A status is a nicety:
no failure here ever fails a turn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from bot.names import NameCache, user_name
from bot.policy_rules import CallPolicy
from bot.slack_out import SlackOut
from bot.streaming import slack_error
from bot.threads import SlackThread

log = logging.getLogger(__name__)

WORKING = "is working on it…"
LOADING = ("Reading your request…", "Thinking it through…", "Checking what needs a review…")
"""Rotated by Slack while working (at most 10)."""
UNAVAILABLE = frozenset({"unknown_method", "not_allowed", "method_deprecated", "missing_scope"})
MAX_NAMED = 3
"""People named in the waiting status; more are counted ("and 2 others")."""


def waiting_words(calls: Sequence[CallPolicy], names: dict[str, str]) -> str:
    """``is waiting for approval from Alice or Bob``: who may decide the waiting calls (their
    policies' approvers: people by name, a user group as its members, anyone if unnamed)."""
    if any(call.policy.approvers is None for call in calls):
        return "is waiting for approval from anyone who can see the review"
    ids = sorted({who for call in calls for who in call.policy.approvers or ()})
    people = [names.get(i, "someone") for i in ids if not i.startswith("S")]
    if any(i.startswith("S") for i in ids):
        people.append("a member of the named group")
    shown = people[:MAX_NAMED]
    rest = len(people) - len(shown)
    who = " or ".join(shown) if len(shown) <= 2 else ", ".join(shown[:-1]) + " or " + shown[-1]
    return f"is waiting for approval from {who}" + (f" (and {rest} others)" if rest else "")


class ThreadStatus:
    """Sets, and clears, the status of conversations (see the module)."""

    def __init__(self, slack: SlackOut) -> None:
        self.slack = slack
        self.names: NameCache = slack.names
        self.unavailable: set[str | None] = set()

    def available(self, thread: SlackThread) -> bool:
        return thread.team_id not in self.unavailable

    async def _set(self, thread: SlackThread, status: str, loading: Iterable[str] = ()) -> bool:
        """True when the status API answered (even with another error): no fallback then."""
        try:
            await self.slack.client.assistant_threads_setStatus(
                channel_id=thread.channel_id,
                thread_ts=thread.thread_ts,
                status=status,
                loading_messages=list(loading) or None,
            )
        except Exception as error:
            code = slack_error(error)
            if code in UNAVAILABLE:
                log.info("no thread status here (%s): the reaction shows progress", code)
                self.unavailable.add(thread.team_id)
                return False
            log.debug("setting the thread status failed: %s", code or error)
        return True

    async def working(self, thread: SlackThread, message_ts: str | None = None) -> bool:
        """The agent runs. Returns True when the fallback reaction was added on
        ``message_ts`` (so :meth:`finished` removes it)."""
        if self.available(thread) and await self._set(thread, WORKING, LOADING):
            return False
        if message_ts is None:
            return False
        await self.slack.react(thread.channel_id, message_ts, add=True)
        return True

    async def finished(
        self,
        thread: SlackThread,
        waiting: Sequence[CallPolicy] = (),
        *,
        reacted_on: str | None = None,
    ) -> None:
        """The run is over: say who may decide what waits, or clear the status."""
        if reacted_on is not None:
            await self.slack.react(thread.channel_id, reacted_on, add=False)
        if not self.available(thread):
            return
        await self._set(
            thread, waiting_words(waiting, await self._names(waiting)) if waiting else ""
        )

    async def _names(self, calls: Sequence[CallPolicy]) -> dict[str, str]:
        ids = sorted({w for c in calls for w in c.policy.approvers or () if not w.startswith("S")})

        async def lookup(user_id: str) -> str | None:
            return user_name(await self.slack.client.users_info(user=user_id))

        return await self.names.resolve("user", ids, lookup)
