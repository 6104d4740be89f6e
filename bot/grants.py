"""Standing approvals ("grants"): an approver approves a call *and* similar later calls of the
same tool, for a while and a number of times, where the tool's policy allows it (README
"Standing approvals").

A grant is the terms its creators agreed to: the tool, the workspace, exact values for the
argument names they chose (compared on canonical JSON: :func:`canonical`), an expiry and a
number of uses. Its invariants, each checked by the database in the statement that uses it:

- a use is taken in one ``UPDATE ... WHERE uses < max_uses AND revoked_at IS NULL AND
  expires_at > now() RETURNING``, so of two replicas racing for the last use exactly one wins,
  and a revoked, expired or exhausted grant approves nothing more;
- a revocation is one ``UPDATE ... WHERE revoked_at IS NULL``, written with its audit entry in
  the same transaction, as is a grant's creation.

The pure rules (:func:`matches`, :func:`refusal`, :func:`combined`) say whether a grant covers
a call; :class:`GrantStore` holds the rows. Nothing here talks to Slack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from bot.audit import INSERT_SQL, AuditEvent, insert_params
from bot.policy import ToolPolicy
from graph.db import Pool

REDACTED = "[redacted]"


def canonical(value: Any) -> str:
    """The one spelling of a JSON value: keys sorted, no spaces, non-ASCII kept. Two values
    are "equal" for a grant when their canonical spellings are (``1`` and ``1.0`` differ: a
    mismatch only costs a review)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class GrantTerms:
    """What one approver agrees to: for how long, how many later calls, which arguments must
    keep the values of this call."""

    seconds: float
    uses: int
    scope: frozenset[str]


def combined(offers: Iterable[GrantTerms]) -> GrantTerms:
    """Terms every creator agreed to: the shortest time, the fewest uses, and every argument
    any of them wanted kept equal (the values are this call's, so more names is narrower)."""
    terms = list(offers)
    return GrantTerms(
        seconds=min(t.seconds for t in terms),
        uses=min(t.uses for t in terms),
        scope=frozenset().union(*(t.scope for t in terms)),
    )


DIGEST = "sha256:"
"""Prefix of a stored digest; no canonical JSON starts with it (``s`` begins no JSON value)."""


def _digest(value: Any) -> str:
    return DIGEST + hashlib.sha256(canonical(value).encode()).hexdigest()


def constraints_of(
    args: Mapping[str, Any], scope: Collection[str], redact: Collection[str] = ()
) -> dict[str, str]:
    """The constraints a grant stores: each chosen argument's canonical value; a redacted
    argument's as a digest, so the grant's row never holds the secret it keeps equal."""
    return {
        name: _digest(args[name]) if name in redact else canonical(args[name])
        for name in args
        if name in scope
    }


def _same(stored: str, value: Any) -> bool:
    return (_digest(value) if stored.startswith(DIGEST) else canonical(value)) == stored


@dataclass(frozen=True)
class Grant:
    id: int
    team_id: str | None
    tool_name: str
    constraints: Mapping[str, str]
    """Argument name -> canonical JSON of the value it must have."""
    created_by: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    max_uses: int
    uses: int
    channel_id: str
    thread_id: str
    interrupt_id: str
    tool_call_id: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Grant:
        fields = {name: row[name] for name in cls.__dataclass_fields__ if name in row}
        fields["created_by"] = tuple(row["created_by"])
        fields["constraints"] = dict(row["constraints"])
        return cls(**fields)

    @property
    def left(self) -> int:
        return self.max_uses - self.uses

    def shown_constraints(self, policy: ToolPolicy) -> dict[str, Any]:
        """The constraints as people may see them: values decoded, redacted ones masked, by
        name (jsonb keeps no order of its own worth showing)."""
        return {
            name: REDACTED
            if name in policy.redact or value.startswith(DIGEST)
            else json.loads(value)
            for name in sorted(self.constraints)
            for value in [self.constraints[name]]
        }


# -- the pure rules --------------------------------------------------------------------------


def matches(grant: Grant, tool: str, team_id: str | None, args: Mapping[str, Any]) -> bool:
    """Same tool and workspace, and every constrained argument present with an equal value."""
    if grant.tool_name != tool or grant.team_id != team_id:
        return False
    wanted = grant.constraints
    return all(name in args and _same(value, args[name]) for name, value in wanted.items())


def refusal(
    grant: Grant,
    policy: ToolPolicy,
    requesters: Collection[str],
    approving: Collection[str],
) -> str | None:
    """Why a matching grant may not approve a call now (None: it may), under the policy as it
    stands, so a grant never allows more than its creators could approve themselves:

    - the tool must still allow standing approvals;
    - four-eyes: if it applies, no creator may be among the call's requesters (the creator of
      a grant cannot let their own requests run; those get a normal review);
    - ``approving`` (the creators who are still approvers of the tool) must reach the quorum.
    """
    if policy.grants is None:
        return "the policy allows no standing approvals for this tool"
    if policy.four_eyes and set(grant.created_by) & set(requesters):
        return "four-eyes: a creator of the grant asked for this call"
    if len(set(approving)) < policy.quorum:
        return "fewer of its creators than the quorum may approve this tool"
    return None


def requesters_of(request: Mapping[str, Any]) -> frozenset[str]:
    """Everyone whose words led to a call (what four-eyes refuses)."""
    found = {request.get("requested_by"), *(request.get("requesters") or ())}
    return frozenset(str(who) for who in found if who)


# -- the rows --------------------------------------------------------------------------------

GRANT_COLUMNS: LiteralString = (
    "id, team_id, tool_name, constraints, created_by, created_at, expires_at, max_uses, uses, "
    "channel_id, thread_id, interrupt_id, tool_call_id, revoked_at, revoked_by"
)
_ACTIVE: LiteralString = "revoked_at IS NULL AND uses < max_uses AND expires_at > now()"

CREATE_SQL: LiteralString = f"""
    INSERT INTO standing_grants (team_id, tool_name, constraints, created_by, expires_at,
        max_uses, channel_id, thread_id, interrupt_id, tool_call_id, source_ref)
    VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s, %s, %s, %s, %s)
    ON CONFLICT (source_ref) DO NOTHING
    RETURNING {GRANT_COLUMNS}
"""
CANDIDATES_SQL: LiteralString = f"""
    SELECT {GRANT_COLUMNS} FROM standing_grants
    WHERE tool_name = %s AND team_id IS NOT DISTINCT FROM %s AND {_ACTIVE}
    ORDER BY expires_at, id LIMIT %s
"""
CONSUME_SQL: LiteralString = f"""
    UPDATE standing_grants SET uses = uses + 1
    WHERE id = %s AND {_ACTIVE}
    RETURNING {GRANT_COLUMNS}
"""
"""Take one use, atomically: the conditions are checked by the statement that takes it."""
REVOKE_SQL: LiteralString = f"""
    UPDATE standing_grants SET revoked_at = now(), revoked_by = %s
    WHERE id = %s AND revoked_at IS NULL
    RETURNING {GRANT_COLUMNS}
"""
ACTIVE_SQL: LiteralString = (
    f"SELECT {GRANT_COLUMNS} FROM standing_grants WHERE {_ACTIVE} "
    "ORDER BY created_at DESC, id DESC LIMIT %s"
)
GET_SQL: LiteralString = f"SELECT {GRANT_COLUMNS} FROM standing_grants WHERE id = %s"
OFFER_SQL: LiteralString = """
    INSERT INTO standing_grant_offers (ref, version, user_id, seconds, max_uses, scope)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (ref, version, user_id) DO UPDATE
        SET seconds = excluded.seconds, max_uses = excluded.max_uses, scope = excluded.scope,
            at = now()
"""
OFFERS_SQL: LiteralString = (
    "SELECT user_id, seconds, max_uses, scope FROM standing_grant_offers "
    "WHERE ref = %s AND version = %s"
)


@dataclass(frozen=True)
class NewGrant:
    """A grant about to be created: from the review whose approval creates it."""

    team_id: str | None
    tool_name: str
    constraints: Mapping[str, str]
    created_by: Sequence[str]
    terms: GrantTerms
    channel_id: str
    thread_id: str
    interrupt_id: str
    tool_call_id: str
    source_ref: str


class GrantStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def _grants(self, sql: LiteralString, params: tuple[Any, ...]) -> list[Grant]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, params)).fetchall()
        return [Grant.from_row(row) for row in rows]

    async def _one(self, sql: LiteralString, params: tuple[Any, ...]) -> Grant | None:
        found = await self._grants(sql, params)
        return found[0] if found else None

    async def create(self, new: NewGrant, audit: AuditEvent) -> Grant | None:
        """Create the grant and append its audit entry in one transaction; None if this
        review already created one (a repeated apply)."""
        terms = new.terms
        params = (
            new.team_id,
            new.tool_name,
            Jsonb(dict(new.constraints)),
            list(new.created_by),
            terms.seconds,
            terms.uses,
            new.channel_id,
            new.thread_id,
            new.interrupt_id,
            new.tool_call_id,
            new.source_ref,
        )
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(CREATE_SQL, params)).fetchone()
            if row is None:
                return None
            grant = Grant.from_row(row)
            event = _with_grant_id(audit, grant)
            await conn.execute(INSERT_SQL, insert_params(event))
        return grant

    async def candidates(self, tool: str, team_id: str | None, limit: int = 50) -> list[Grant]:
        """Active grants of a tool in a workspace, the soonest to expire first."""
        return await self._grants(CANDIDATES_SQL, (tool, team_id, limit))

    async def consume(self, grant_id: int) -> Grant | None:
        """Take one use; the grant after it, or None if it was revoked, expired or used up
        (checked in the taking statement)."""
        return await self._one(CONSUME_SQL, (grant_id,))

    async def revoke(self, grant_id: int, by: str, audit: AuditEvent) -> Grant | None:
        """Revoke, with its audit entry, in one transaction; None if already revoked."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(REVOKE_SQL, (by, grant_id))).fetchone()
            if row is None:
                return None
            grant = Grant.from_row(row)
            await conn.execute(INSERT_SQL, insert_params(_with_grant_id(audit, grant)))
        return grant

    async def get(self, grant_id: int) -> Grant | None:
        return await self._one(GET_SQL, (grant_id,))

    async def active(self, limit: int = 200) -> list[Grant]:
        return await self._grants(ACTIVE_SQL, (limit,))

    async def offer(self, ref: str, version: int, user: str, terms: GrantTerms) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                OFFER_SQL, (ref, version, user, terms.seconds, terms.uses, sorted(terms.scope))
            )

    async def offers(self, ref: str, version: int) -> dict[str, GrantTerms]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(OFFERS_SQL, (ref, version))).fetchall()
        return {
            str(row["user_id"]): GrantTerms(
                float(row["seconds"]), int(row["max_uses"]), frozenset(row["scope"])
            )
            for row in rows
        }


def _with_grant_id(audit: AuditEvent, grant: Grant) -> AuditEvent:
    """The entry's detail names the grant, whose id is known only once it is written."""
    return replace(audit, detail=(audit.detail or "").replace("{grant}", str(grant.id)))
