"""The audit trail's hash chain, and ``python -m bot audit verify``, which checks it.

Each workspace (the team of ``slack:TEAM:CHANNEL:TS`` thread ids; any other thread id belongs
to the chain ``''``) has its own chain. Every event carries ``chain_seq`` (1, 2, 3, … within its
workspace), ``prev_hash`` (the previous event's hash; 32 zero bytes for the first) and

    hash = sha256(prev_hash || content(event))

where the content (:func:`content`) is ``audit_events v1;`` followed by every column, each as
``-`` for NULL or its UTF-8 length, ``:``, and its text: workspace, chain_seq, id, the time in
UTC to the microsecond (``2026-12-02T01:02:03.000004``), outcome, thread_id, interrupt_id,
tool_call_id, tool_name, the three argument columns as PostgreSQL writes ``jsonb`` as text,
requested_by, decided_by, channel_id, message_ts, detail and args_digest. The length prefix
makes the encoding unambiguous; the fields and their order are fixed (a new version would
change the ``v1`` tag).

The database computes the links itself, in a ``BEFORE INSERT`` trigger (``bot.migrations``
step 9), so every insert is chained whatever statement makes it (the review transitions append
their event in the same statement as the change: they stay atomic). The trigger takes a
per-workspace advisory lock held until the inserting transaction ends: appenders on every
replica queue per workspace and the chain stays linear; other workspaces never wait.
This module recomputes every hash in Python from the columns as stored, so a row deleted,
reordered (its sequence, id or time changed) or altered is found: the first broken link is
named with its event id.

A sanctioned retention cut (``bot.retention``) records, per workspace, the range it removed
(``first_seq`` to ``last_seq``), the hash before its first event and the hash of its last:
verification steps over exactly that range and goes on from the recorded hash.

What a chain cannot prove on its own: a superuser who rewrites the tail *and* recomputes every
later hash and the head. Keep the heads ``verify`` prints (or a copy of them) outside the
database to catch that too.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString

from bot.audit import in_batches
from graph.db import Pool

GENESIS = bytes(32)
"""The ``prev_hash`` of a workspace's first event."""

VERSION_TAG = b"audit_events v1;"

TEXT_FIELDS: tuple[str, ...] = (
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
)
"""The hashed columns after workspace, chain_seq, id and at, in order."""

ROWS_SQL: LiteralString = """
    SELECT id, at, workspace, chain_seq, prev_hash, hash, outcome, thread_id, interrupt_id,
        tool_call_id, tool_name, proposed_args::text AS proposed_args,
        edited_args::text AS edited_args, executed_args::text AS executed_args, requested_by,
        decided_by, channel_id, message_ts, detail, args_digest
    FROM audit_events ORDER BY workspace, chain_seq
"""
_CUTS_SQL: LiteralString = """
    SELECT id, workspace, first_seq, first_prev_hash, last_seq, last_hash FROM audit_cuts
    WHERE workspace IS NOT NULL AND first_seq IS NOT NULL
"""
_HEADS_SQL: LiteralString = "SELECT workspace, seq, hash FROM audit_chain_heads"


def _field(value: str | None) -> bytes:
    if value is None:
        return b"-"
    data = value.encode("utf-8")
    return str(len(data)).encode("ascii") + b":" + data


def moment(at: datetime) -> str:
    """The time as the chain hashes it: UTC, to the microsecond."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def content(row: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash covers (the trigger's ``audit_event_content``); ``row`` holds
    the argument columns as text, as :data:`ROWS_SQL` reads them."""
    head = (row["workspace"], str(row["chain_seq"]), str(row["id"]), moment(row["at"]))
    return VERSION_TAG + b"".join(_field(v) for v in (*head, *(row[n] for n in TEXT_FIELDS)))


def link(prev_hash: bytes, row: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(prev_hash + content(row)).digest()


@dataclass(frozen=True)
class Cut:
    """What one sanctioned cut removed from one chain."""

    id: int
    first_seq: int
    first_prev_hash: bytes
    last_seq: int
    last_hash: bytes


@dataclass(frozen=True)
class Broken:
    """The first broken link: where, and what is wrong, in words for a person."""

    workspace: str | None
    event_id: int | None
    problem: str

    def line(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else "the chain's head"
        return f"broken at {where} (workspace {self.workspace!r}): {self.problem}"


@dataclass
class Verified:
    """What a verification found: events checked, each workspace's head, the first break."""

    events: int = 0
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    broken: Broken | None = None

    def lines(self) -> list[str]:
        if self.broken is not None:
            return [self.broken.line(), f"{self.events} event(s) checked before it"]
        heads = [
            f"  workspace {name!r}: {seq} event(s), head {digest.hex()}"
            for name, (seq, digest) in sorted(self.heads.items())
        ]
        return [f"audit trail intact: {self.events} event(s) verified", *heads]


class _Chain:
    """Walks one workspace's rows in sequence, stepping over sanctioned cuts."""

    def __init__(self, workspace: str, cuts: Mapping[int, Cut]) -> None:
        self.workspace = workspace
        self.cuts = cuts  # by first_seq
        self.seq = 0
        self.hash = GENESIS

    def _step_over_cuts(self, until: int) -> None:
        while self.seq + 1 < until:
            cut = self.cuts.get(self.seq + 1)
            if cut is None or cut.first_prev_hash != self.hash or cut.last_seq >= until:
                return
            self.seq, self.hash = cut.last_seq, cut.last_hash

    def check(self, row: Mapping[str, Any]) -> str | None:
        """What is wrong with the next row, or None (and the chain moves on to it)."""
        seq, prev_hash, stored = row["chain_seq"], row["prev_hash"], row["hash"]
        if seq is None or prev_hash is None or stored is None:
            return "not chained (inserted while the chain trigger was disabled?)"
        self._step_over_cuts(seq)
        if seq <= self.seq:
            return f"sequence {seq} again or out of order (expected {self.seq + 1}): reordered?"
        if seq > self.seq + 1:
            return (
                f"events {self.seq + 1} to {seq - 1} are missing and no retention cut "
                "records them: deleted?"
            )
        if bytes(prev_hash) != self.hash:
            return "its prev_hash is not the previous event's hash: reordered or replaced?"
        if link(self.hash, row) != bytes(stored):
            return "its content does not match its hash: altered?"
        self.seq, self.hash = seq, bytes(stored)
        return None

    def check_head(self, head: tuple[int, bytes] | None) -> str | None:
        if head is None:
            return "no chain head recorded for this workspace"
        self._step_over_cuts(head[0] + 1)
        if head[0] > self.seq:
            return f"the last {head[0] - self.seq} event(s) are missing (head at {head[0]})"
        if head != (self.seq, self.hash):
            return f"the head (sequence {head[0]}) does not match the last event"
        return None


def _cuts(rows: list[dict[str, Any]]) -> dict[str, dict[int, Cut]]:
    cuts: dict[str, dict[int, Cut]] = {}
    for r in rows:
        first_prev, last = bytes(r["first_prev_hash"]), bytes(r["last_hash"])
        cut = Cut(r["id"], r["first_seq"], first_prev, r["last_seq"], last)
        cuts.setdefault(r["workspace"], {})[cut.first_seq] = cut
    return cuts


async def verify(pool: Pool, *, batch: int = 1000) -> Verified:
    """Check every workspace's chain, streaming the trail through a server-side cursor
    ``batch`` rows at a time (constant memory: one batch, the cuts and the heads); stop at the
    first broken link. Heads, cuts and events are read in one snapshot (``REPEATABLE READ``),
    so events appended meanwhile are neither half seen nor held against the trail."""
    found = Verified()
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cuts = _cuts(await (await conn.execute(_CUTS_SQL)).fetchall())
        head_rows = await (await conn.execute(_HEADS_SQL)).fetchall()
        heads = {r["workspace"]: (int(r["seq"]), bytes(r["hash"])) for r in head_rows}
        cursor = conn.cursor(name="audit_verify")
        await cursor.execute(ROWS_SQL)
        found.broken = await _walk(in_batches(cursor, batch), cuts, heads, found)
    if found.broken is None:
        for workspace in sorted(set(heads) - set(found.heads)):  # every event of it was cut
            empty = _Chain(workspace, cuts.get(workspace, {}))
            if problem := _close(empty, heads, found):
                found.broken = Broken(workspace, None, problem)
                break
    return found


async def _walk(
    rows: AsyncIterator[dict[str, Any]],
    cuts: Mapping[str, Mapping[int, Cut]],
    heads: Mapping[str, tuple[int, bytes]],
    found: Verified,
) -> Broken | None:
    chain: _Chain | None = None
    async for row in rows:
        workspace = row["workspace"]
        if workspace is None or row["chain_seq"] is None:
            return Broken(workspace, row["id"], "not chained (inserted with its trigger off?)")
        if chain is None or workspace != chain.workspace:
            if chain is not None and (problem := _close(chain, heads, found)):
                return Broken(chain.workspace, None, problem)
            chain = _Chain(workspace, cuts.get(workspace, {}))
        if problem := chain.check(row):
            return Broken(workspace, row["id"], problem)
        found.events += 1
    if chain is not None and (problem := _close(chain, heads, found)):
        return Broken(chain.workspace, None, problem)
    return None


def _close(chain: _Chain, heads: Mapping[str, tuple[int, bytes]], found: Verified) -> str | None:
    problem = chain.check_head(heads.get(chain.workspace))
    if problem is None:
        found.heads[chain.workspace] = (chain.seq, chain.hash)
    return problem
