"""The audit trail: one row per thing that happened to a tool call, kept forever.

Every call that ran is here: a reviewed one with its decision (``approved``/``edited``), one that
ran without review as ``auto_approved``, with the rule that allowed it in ``detail``.

Reviews in ``slack_reviews`` are working state (a claim is released, a status moves on); the
audit trail is the record an operator or auditor reads later: who asked for what, who decided,
what actually ran. It is append-only, and the database enforces that (a trigger refuses UPDATE,
DELETE and TRUNCATE), so a bug or a careless script in the bot cannot rewrite history; only a
superuser dropping the trigger could, and the hash chain (``bot.audit_chain``, checked by
``python -m bot audit verify``) then shows where. Arguments arrive already redacted by the
caller (the policy knows which ones are secret); this module stores what it is given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal, LiteralString, get_args

from psycopg import AsyncServerCursor, sql
from psycopg.types.json import Jsonb

from graph.db import Pool

Outcome = Literal[
    "requested",
    "approval_recorded",
    "approved",
    "edited",
    "feedback",
    "expired",
    "refused",
    "auto_approved",
    "escalated",
    "grant_created",
    "grant_revoked",
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)

AUDIT_TABLE = "audit_events"

COLUMNS: tuple[str, ...] = (
    "id",
    "at",
    "outcome",
    "thread_id",
    "interrupt_id",
    "tool_call_id",
    "tool_name",
    "proposed_args",
    "edited_args",
    "executed_args",
    "requested_by",
    "decided_by",
    "channel_id",
    "message_ts",
    "detail",
    "args_digest",
    "workspace",
    "chain_seq",
    "prev_hash",
    "hash",
)
"""Every column, as read and exported; the last four are the hash chain's
(``bot.audit_chain``), written by the database itself."""
_JSON_COLUMNS = frozenset({"proposed_args", "edited_args", "executed_args"})


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the trail. ``*_args`` must already be redacted by the caller."""

    outcome: Outcome
    thread_id: str
    interrupt_id: str
    tool_call_id: str
    tool_name: str
    proposed_args: dict[str, Any] | None = None
    edited_args: dict[str, Any] | None = None
    executed_args: dict[str, Any] | None = None
    requested_by: str | None = None
    decided_by: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None
    detail: str | None = None
    args_digest: str | None = None
    """The digest (``graph.digest``) of the arguments the decision was bound to."""


_EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AuditEvent))
INSERT_SQL: LiteralString = (
    f"INSERT INTO {AUDIT_TABLE} ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_EVENT_COLUMNS))})"
)
"""Built once: composing the statement for each event cost more than the insert's own work."""

INSERT_ONCE_SQL: LiteralString = (
    f"{INSERT_SQL} ON CONFLICT (thread_id, tool_call_id) WHERE outcome = 'auto_approved' DO NOTHING"
)
"""For events that may be presented twice (``auto_approved``): a repeat is dropped."""

TYPED_VALUES: LiteralString = ", ".join(
    "%s::jsonb" if name in _JSON_COLUMNS else "%s::text" for name in _EVENT_COLUMNS
)
"""The event as a typed select list, for ``INSERT ... SELECT`` guarded by another statement's
rows (``INSERT INTO audit_events (...) SELECT <TYPED_VALUES> FROM changed``)."""
INSERT_COLUMNS: LiteralString = ", ".join(_EVENT_COLUMNS)


def insert_params(event: AuditEvent) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_SQL` for ``event``. An unknown outcome is a programming
    error, refused loudly."""
    if event.outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {event.outcome!r} (use one of {OUTCOMES})")
    return tuple(_param(name, getattr(event, name)) for name in _EVENT_COLUMNS)


def _param(column: str, value: Any) -> Any:
    return Jsonb(value) if column in _JSON_COLUMNS and value is not None else value


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes mean UTC: the server's TimeZone setting must not change a query."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class AuditLog:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def record(self, event: AuditEvent) -> None:
        """Append one event. An unknown outcome is a programming error, refused loudly.

        An ``auto_approved`` event is recorded once per tool call of a conversation: presenting
        the same results again (a recovery) adds nothing."""
        params = insert_params(event)
        statement = INSERT_ONCE_SQL if event.outcome == "auto_approved" else INSERT_SQL
        async with self.pool.connection() as conn:
            await conn.execute(statement, params)

    async def query(
        self,
        *,
        tool: str | None = None,
        user: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events matching every given filter, oldest first.

        ``user`` matches whoever asked or decided; ``since`` is inclusive and ``until``
        exclusive (so consecutive windows never count an event twice); naive datetimes are
        UTC. With ``limit``, the *latest* ``limit`` matching events are returned, still oldest
        first, like ``tail``: the recent past is what someone looking at the trail wants.
        """
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        condition, params = _filters(tool, user, outcome, since, until)
        statement = sql.SQL("{} ORDER BY at DESC, id DESC").format(_select(condition))
        if limit is not None:
            statement = sql.SQL("{} LIMIT %s").format(statement)
            params.append(limit)
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(statement, params)).fetchall()
        rows.reverse()
        return [dict(row) for row in rows]

    async def stream(
        self,
        *,
        tool: str | None = None,
        user: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        batch: int = 1000,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching event (or, with ``limit``, the latest ``limit`` of them, as
        :meth:`query` picks them), oldest first, read through a server-side cursor ``batch``
        rows at a time: an export of millions of events holds one batch in memory, not the
        trail. The cursor lives in one transaction (a snapshot), so the export is consistent."""
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        condition, params = _filters(tool, user, outcome, since, until)
        statement = sql.SQL("{} ORDER BY at, id").format(_select(condition))
        if limit is not None:  # the latest ones, then back to oldest first
            latest = sql.SQL("{} ORDER BY at DESC, id DESC LIMIT %s").format(_select(condition))
            statement = sql.SQL("SELECT * FROM ({}) AS latest ORDER BY at, id").format(latest)
            params.append(limit)
        async with self.pool.connection() as conn, conn.transaction():
            cursor = conn.cursor(name="audit_export")
            await cursor.execute(statement, params)
            async for row in in_batches(cursor, batch):
                yield dict(row)


async def in_batches(cursor: AsyncServerCursor[Any], batch: int) -> AsyncIterator[Any]:
    """A server-side cursor's rows, fetched ``batch`` at a time (``FETCH FORWARD batch``): at
    most one batch is held here, whatever the result's size."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    while rows := await cursor.fetchmany(batch):
        for row in rows:
            yield row
        if len(rows) < batch:
            return


def _filters(
    tool: str | None,
    user: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[sql.Composable, list[Any]]:
    """The WHERE clause (or nothing) for the audit filters, and its parameters."""
    where: list[sql.Composable] = []
    params: list[Any] = []
    if tool is not None:
        where.append(sql.SQL("tool_name = %s"))
        params.append(tool)
    if user is not None:
        where.append(sql.SQL("(requested_by = %s OR decided_by = %s)"))
        params += [user, user]
    if outcome is not None:
        where.append(sql.SQL("outcome = %s"))
        params.append(outcome)
    if since is not None:
        where.append(sql.SQL("at >= %s"))
        params.append(as_utc(since))
    if until is not None:
        where.append(sql.SQL("at < %s"))
        params.append(as_utc(until))
    condition = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    return condition, params


def _select(condition: sql.Composable) -> sql.Composed:
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    return sql.SQL("SELECT {} FROM {}{}").format(columns, sql.Identifier(AUDIT_TABLE), condition)
