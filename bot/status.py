"""The conversation's status, telling the truth about the agent.

Two Slack APIs, both in slack_sdk 3.48, used together where the workspace answers them:

* ``agents.sessions.setStatus``: the agent session's lifecycle (``processing`` while the agent
  runs, ``suspended`` while it waits for a review, ``closed`` afterwards); it carries no words.
  ``initiator_user_id`` names who asked (sent while processing, as the SDK allows).
* ``assistant.threads.setStatus``: the words under the thread (``is working on it…``, then
  who may decide what waits, then cleared). Slack clears it itself when the app posts in the
  thread, so the waiting words are set after the review card is posted, and Slack removes it
  after two minutes without a message: the card itself then says who may decide, as always.
  It takes ``chat:write`` (Slack's changelog of 2026-03-05), so it works in channels too.

A workspace that answers either with ``unknown_method``, ``not_allowed``,
``method_deprecated`` or ``missing_scope`` is remembered (per API) and not asked again; only
where neither answers does the person's message get today's ``:eyes:`` reaction instead. A
status is a nicety: no failure here ever fails a turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

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
PROCESSING, SUSPENDED, CLOSED = "processing", "suspended", "closed"
"""The session states the bot sets (``agents.sessions.setStatus``; Slack also has ``active``)."""
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
        """Teams without ``assistant.threads.setStatus`` (no words)."""
        self.no_sessions: set[str | None] = set()
        """Teams without ``agents.sessions.setStatus`` (no session lifecycle)."""

    def available(self, thread: SlackThread) -> bool:
        return thread.team_id not in self.unavailable

    def sessions(self, thread: SlackThread) -> bool:
        return thread.team_id not in self.no_sessions

    async def _set(self, thread: SlackThread, status: str, loading: Iterable[str] = ()) -> bool:
        """The words. True when the API answered (even with another error): no fallback."""
        if not self.available(thread):
            return False
        return await self._ask(
            thread,
            self.unavailable,
            self.slack.client.assistant_threads_setStatus(
                channel_id=thread.channel_id,
                thread_ts=thread.thread_ts,
                status=status,
                loading_messages=list(loading) or None,
            ),
        )

    async def _session(self, thread: SlackThread, state: str, user: str | None = None) -> bool:
        """The session's lifecycle. True when the API answered (even with another error)."""
        if not self.sessions(thread):
            return False
        return await self._ask(
            thread,
            self.no_sessions,
            self.slack.client.agents_sessions_setStatus(
                channel_id=thread.channel_id,
                thread_ts=thread.thread_ts,
                status=state,
                initiator_user_id=user if state == PROCESSING else None,
            ),
        )

    @staticmethod
    async def _ask(thread: SlackThread, lacking: set[str | None], call: Awaitable[Any]) -> bool:
        try:
            await call
        except Exception as error:
            code = slack_error(error)
            if code in UNAVAILABLE:
                log.info("a status API is not available here (%s): not asked again", code)
                lacking.add(thread.team_id)
                return False
            log.debug("setting the status failed: %s", code or error)
        return True

    async def working(
        self, thread: SlackThread, message_ts: str | None = None, user: str | None = None
    ) -> bool:
        """The agent runs (``user``: who asked). Returns True when the fallback reaction was
        added on ``message_ts`` (so :meth:`finished` removes it): neither API answered."""
        session, words = await asyncio.gather(  # two independent calls: at once
            self._session(thread, PROCESSING, user), self._set(thread, WORKING, LOADING)
        )
        if session or words or message_ts is None:
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
        """The run is over: suspended, saying who may decide what waits; or closed."""
        if reacted_on is not None:
            await self.slack.react(thread.channel_id, reacted_on, add=False)
        await asyncio.gather(
            self._session(thread, SUSPENDED if waiting else CLOSED), self._words(thread, waiting)
        )

    async def _words(self, thread: SlackThread, waiting: Sequence[CallPolicy]) -> None:
        if self.available(thread):
            words = waiting_words(waiting, await self._names(waiting)) if waiting else ""
            await self._set(thread, words)

    async def _names(self, calls: Sequence[CallPolicy]) -> dict[str, str]:
        ids = sorted({w for c in calls for w in c.policy.approvers or () if not w.startswith("S")})

        async def lookup(user_id: str) -> str | None:
            return user_name(await self.slack.client.users_info(user=user_id))

        return await self.names.resolve("user", ids, lookup)
