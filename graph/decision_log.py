"""Who answered which interrupt, how and when: kept outside the checkpoint so a stale click can
be told who decided, and so a decision that was recorded but not applied can be found again."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from graph.db import Pool
from graph.locks import Lease
from graph.types import DecisionRecord, PastDecision


async def record(
    pool: Pool, thread_id: str, interrupt_id: str, tool_name: str, decision: DecisionRecord
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            """
            INSERT INTO agent_decisions
                (thread_id, interrupt_id, tool_call_id, tool_name, action, args, feedback,
                 decided_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (thread_id, interrupt_id) DO NOTHING
            """,
            (
                thread_id,
                interrupt_id,
                decision["tool_call_id"],
                tool_name,
                decision["action"],
                Jsonb(decision["args"]) if decision["args"] is not None else None,
                decision["feedback"],
                decision["by"],
            ),
        )


MARK_APPLIED_SQL = (
    "UPDATE agent_decisions SET applied_at = now() WHERE thread_id = %s AND interrupt_id = %s"
)


def mark_applied_with(lease: Lease, thread_id: str, interrupt_id: str) -> None:
    """Mark the decision applied in the statement that releases the thread's lease (one round
    trip for both; the mark only tells an operator the run got that far)."""
    lease.on_release(MARK_APPLIED_SQL, (thread_id, interrupt_id))


async def find(pool: Pool, thread_id: str, interrupt_id: str) -> PastDecision | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT action, decided_by, decided_at FROM agent_decisions "
                "WHERE thread_id = %s AND interrupt_id = %s",
                (thread_id, interrupt_id),
            )
        ).fetchone()
    if row is None:
        return None
    return PastDecision(
        interrupt_id=interrupt_id,
        action=row["action"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
    )
