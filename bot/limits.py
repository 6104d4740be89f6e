"""How many agent turns one person, and one workspace, may start: at once and per minute.

Every message the agent answers starts a turn (a model call, often several). Without a limit,
60 mentions sent by one person in a few seconds start 60 of them. Here a turn is admitted only
while its author and its workspace are under their limits; a refused message gets one polite
answer per burst (not one per message) and is marked handled, so nothing retries it.

The counts live in PostgreSQL, so the limits hold across replicas: admission for a workspace
runs in one transaction under a transaction-scoped advisory lock on that workspace, so two
replicas cannot both admit the last free turn. A turn counts as running while its Slack event
is being handled (``slack_events.status = 'handling'``, which every path ends by marking it
done), and toward the minute from its start. Rows are kept for :data:`HORIZON_SECONDS`: a
turn whose process died and that nobody finished stops counting as running then.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from slack_bolt.async_app import AsyncBoltContext

from bot.threads import SlackThread
from graph.db import Pool

if TYPE_CHECKING:  # bot.config imports this module; Turns is only a type here
    from bot.turns import Turns

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
"""The per-minute limits count turns started in the last this many seconds; a burst of
refusals ends after this long without one (the next refusal is answered again)."""
HORIZON_SECONDS = 900
"""Turn rows older than this are deleted, and no longer count as running."""
CONTEXT_KEY = "turn_limiter"

Reason = Literal["user_running", "user_minute", "workspace_running", "workspace_minute"]


@dataclass(frozen=True)
class TurnLimits:
    """0 means no limit. See README "Configuration" for the variables that set these."""

    per_user_per_minute: int = 10
    concurrent_per_user: int = 3
    per_workspace_per_minute: int = 120
    concurrent_per_workspace: int = 20

    @classmethod
    def unlimited(cls) -> TurnLimits:
        return cls(0, 0, 0, 0)

    def exceeded(self, counts: dict[str, int]) -> tuple[Reason, int] | None:
        """The first limit the counts (of turns before this one) leave no room under."""
        checks: tuple[tuple[Reason, int], ...] = (
            ("user_running", self.concurrent_per_user),
            ("user_minute", self.per_user_per_minute),
            ("workspace_running", self.concurrent_per_workspace),
            ("workspace_minute", self.per_workspace_per_minute),
        )
        for reason, limit in checks:
            if limit and counts[reason] >= limit:
                return reason, limit
        return None


@dataclass(frozen=True)
class Admitted:
    pass


@dataclass(frozen=True)
class Limited:
    reason: Reason
    limit: int
    tell: bool
    """The first refusal of a burst: answer it (later ones in the burst are not)."""

    @property
    def message(self) -> str:
        n = self.limit
        again = "Please ask again in a minute"
        if self.reason == "user_running":
            why = f"I'm still working on {n} of your requests, as many as I take at once"
            again = "Please ask again once they are done"
        elif self.reason == "user_minute":
            why = f"you've asked me for {n} things in the last minute, my limit per person"
        elif self.reason == "workspace_running":
            why = f"I'm working on {n} requests in this workspace, as many as I take at once"
        else:
            why = f"I've started {n} requests in this workspace in the last minute, my limit"
        return (
            f"Sorry, I didn't start on this: {why}. {again}. "
            "Until then I'll skip further requests without answering each one."
        )


_COUNTS_SQL = """
    WITH recent AS (
        SELECT t.user_id = %(user)s AS own, e.status = 'handling' AS running,
            t.started_at > now() - make_interval(secs => %(window)s) AS in_window
        FROM slack_turns t LEFT JOIN slack_events e USING (event_id)
        WHERE t.team_id = %(team)s AND t.started_at > now() - make_interval(secs => %(horizon)s)
    )
    SELECT count(*) FILTER (WHERE own AND running) AS user_running,
        count(*) FILTER (WHERE own AND in_window) AS user_minute,
        count(*) FILTER (WHERE running) AS workspace_running,
        count(*) FILTER (WHERE in_window) AS workspace_minute
    FROM recent
"""


class TurnLimiter:
    def __init__(self, pool: Pool, limits: TurnLimits) -> None:
        self.pool = pool
        self.limits = limits

    async def admit(self, event_id: str, team_id: str, user_id: str) -> Admitted | Limited:
        """Admit the turn of ``event_id`` (idempotent: a retried event stays admitted) or say
        which limit it hits, atomically for the workspace across every replica."""
        if self.limits == TurnLimits.unlimited():
            return Admitted()
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('slack_turns:' || %s, 0))",
                (team_id,),
            )
            seen = await conn.execute("SELECT 1 FROM slack_turns WHERE event_id = %s", (event_id,))
            if await seen.fetchone():
                return Admitted()
            await conn.execute(
                "DELETE FROM slack_turns WHERE team_id = %s"
                " AND started_at < now() - make_interval(secs => %s)",
                (team_id, HORIZON_SECONDS),
            )
            params = {
                "user": user_id,
                "team": team_id,
                "window": WINDOW_SECONDS,
                "horizon": HORIZON_SECONDS,
            }
            counted = await conn.execute(_COUNTS_SQL, params)
            counts: dict[str, Any] = dict(await counted.fetchone() or {})
            hit = self.limits.exceeded({k: int(v) for k, v in counts.items()})
            if hit is None:
                await conn.execute(
                    "INSERT INTO slack_turns (event_id, team_id, user_id) VALUES (%s, %s, %s)",
                    (event_id, team_id, user_id),
                )
                return Admitted()
            return Limited(*hit, tell=await _refusal_starts_burst(conn, team_id, user_id))


async def _refusal_starts_burst(conn: AsyncConnection[DictRow], team_id: str, user_id: str) -> bool:
    """Record this refusal; True unless the person was refused within the last window."""
    previous = await conn.execute(
        "SELECT last_refused_at > now() - make_interval(secs => %s) AS recent"
        " FROM slack_turn_refusals WHERE team_id = %s AND user_id = %s",
        (WINDOW_SECONDS, team_id, user_id),
    )
    row = await previous.fetchone()
    await conn.execute(
        "INSERT INTO slack_turn_refusals AS r (team_id, user_id, last_refused_at)"
        " VALUES (%s, %s, now())"
        " ON CONFLICT (team_id, user_id) DO UPDATE SET last_refused_at = now()",
        (team_id, user_id),
    )
    return row is None or not row["recent"]


# -- the hook in the event listener ---------------------------------------------------------------


def provide(limiter: TurnLimiter) -> Callable[..., Awaitable[None]]:
    """Bolt middleware putting ``limiter`` in every request's context, for :func:`admit_turn`."""

    async def provide_turn_limiter(
        context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> None:
        context[CONTEXT_KEY] = limiter
        await next()

    return provide_turn_limiter


async def admit_turn(turns: Turns, body: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Whether the claimed event ``body`` may start a turn. A refused one is answered in its
    thread (first of a burst only) and marked handled. Fails open: if the counts cannot be
    read, the turn goes ahead (it will report the database error itself if it persists)."""
    limiter = context.get(CONTEXT_KEY)
    if not isinstance(limiter, TurnLimiter):
        return True
    event = body["event"]
    team = str(body.get("team_id") or event.get("team") or "")
    try:
        verdict = await limiter.admit(str(body["event_id"]), team, str(event["user"]))
    except Exception:
        log.warning("could not count turns; admitting this one", exc_info=True)
        return True
    if isinstance(verdict, Admitted):
        return True
    log.info("turn refused (%s, limit %d)", verdict.reason, verdict.limit)
    if verdict.tell:
        thread = SlackThread(team or None, event["channel"], event.get("thread_ts") or event["ts"])
        await turns.say(thread, verdict.message)
    try:
        await turns.finish_event(body["event_id"])
    except Exception:
        log.warning("could not mark refused event %s handled", body["event_id"], exc_info=True)
    return False
