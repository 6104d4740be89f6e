"""Versioned migrations: numbered steps per component, and a table recording which ran.

A component (``agent``, ``bot``) owns an ordered list of :class:`Step` s numbered 1, 2, 3...
:func:`apply` runs, in order, every step of the component that ``schema_migrations`` does not
record yet, each in its own transaction together with the row recording it, so a step either
ran and is recorded or left no trace. Steps never change once released: a change is a new
step.

Databases created before versions were recorded (by an unversioned list of idempotent
statements replayed at every start) upgrade in place: step 1 of each component is that whole
list, safe to run on a database that already has it, and is recorded like any other step.

Replicas may start together: the steps run under ``graph.db``'s migration lock, taken by
polling ``pg_try_advisory_lock`` (a blocking lock can deadlock with ``CREATE INDEX
CONCURRENTLY``); whoever takes it second finds the steps recorded and runs none.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow

from graph.db import Pool, PooledPostgresSaver, migration_lock

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        component text NOT NULL,
        version integer NOT NULL,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (component, version)
    )
"""


@dataclass(frozen=True)
class Step:
    """One numbered change of a component's schema: statements run in one transaction."""

    version: int
    name: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class Component:
    """A named, independently versioned set of tables and its steps, numbered from 1."""

    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        numbers = [step.version for step in self.steps]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.name}: steps must be numbered 1..n in order, not {numbers}")


@dataclass(frozen=True)
class StepStatus:
    """A step as a database has it: ``applied_at`` is None while it is pending."""

    component: str
    version: int
    name: str
    applied_at: datetime | None

    @property
    def pending(self) -> bool:
        return self.applied_at is None


AGENT_SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS agent_thread_leases (
        thread_id text PRIMARY KEY,
        holder text NOT NULL,
        expires_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS agent_decisions (
        thread_id text NOT NULL,
        interrupt_id text NOT NULL,
        tool_call_id text NOT NULL,
        tool_name text NOT NULL,
        action text NOT NULL,
        args jsonb,
        feedback text,
        decided_by text,
        decided_at timestamptz NOT NULL DEFAULT now(),
        applied_at timestamptz,
        PRIMARY KEY (thread_id, interrupt_id)
    )
    """,
)

AGENT = Component(
    "agent",
    (Step(1, "leases and decisions (the unversioned schema, idempotent)", AGENT_SCHEMA),),
)
"""The agent's own tables. The checkpointer's tables are versioned by LangGraph itself
(``checkpoint_migrations``); its ``setup()`` runs after these steps, under the same lock."""


async def _recorded(conn: AsyncConnection[DictRow], component: str) -> dict[int, datetime]:
    try:
        cursor = await conn.execute(
            "SELECT version, applied_at FROM schema_migrations WHERE component = %s",
            (component,),
        )
    except errors.UndefinedTable:  # nothing migrated yet (autocommit: no transaction to undo)
        return {}
    return {row["version"]: row["applied_at"] for row in await cursor.fetchall()}


async def apply(
    pool: Pool,
    component: Component,
    *,
    setup: Sequence[Callable[[], Awaitable[None]]] = (),
) -> list[Step]:
    """Run the component's unrecorded steps in order (then each ``setup()``, e.g. the
    checkpointer's own versioned setup), under the migration lock; return the steps run."""
    ran: list[Step] = []
    async with migration_lock(pool) as conn:
        await conn.execute(MIGRATIONS_TABLE)
        done = await _recorded(conn, component.name)
        if unknown := sorted(set(done) - {step.version for step in component.steps}):
            log.warning(
                "the database has %s steps %s this release does not know (a newer release ran):"
                " they are left as they are",
                component.name,
                unknown,
            )
        for step in component.steps:
            if step.version in done:
                continue
            async with conn.transaction():
                for statement in step.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name) VALUES (%s, %s, %s)",
                    (component.name, step.version, step.name),
                )
            ran.append(step)
        for run_setup in setup:
            await run_setup()
    return ran


async def status(pool: Pool, component: Component) -> list[StepStatus]:
    """Every step of the component, applied (when) or pending; reads only, takes no lock."""
    async with pool.connection() as conn:
        done = await _recorded(conn, component.name)
    return [
        StepStatus(component.name, step.version, step.name, done.get(step.version))
        for step in component.steps
    ]


async def migrate_agent(pool: Pool) -> list[Step]:
    """The agent's steps, then the checkpointer's own (LangGraph versions those itself)."""
    return await apply(pool, AGENT, setup=[PooledPostgresSaver(pool).setup])


async def checkpoint_status(pool: Pool) -> tuple[int, int]:
    """(applied, known) of LangGraph's checkpointer migrations (``checkpoint_migrations``)."""
    known = len(PooledPostgresSaver.MIGRATIONS)
    async with pool.connection() as conn:
        try:
            cursor = await conn.execute("SELECT max(v) AS v FROM checkpoint_migrations")
        except errors.UndefinedTable:
            return 0, known
        row = await cursor.fetchone()
    latest = row["v"] if row else None
    return (0 if latest is None else latest + 1), known


def _state(step: StepStatus) -> str:
    if step.applied_at is None:
        return "pending"
    return "applied " + step.applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def status_lines(steps: Sequence[StepStatus]) -> list[str]:
    """One line a step: component, version, applied (when, UTC) or pending, name."""
    return [f"{s.component:<6} {s.version:>3}  {_state(s):<28} {s.name}" for s in steps]
