"""Home and ``/approvals`` list a review under the rule it was registered under (stored with
the row), not under whatever the clock would choose now, and an edit awaiting its quorum is
held to both rules."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.flow import ReviewFlow
from bot.listeners.home import WaitingLister, lister_for
from bot.migrations import migrate_bot
from bot.permissions import Approvers
from bot.policy import Policy, parse_policy
from bot.store import BotStore
from graph.db import open_pool
from sandbox import SandboxConfig, running_sandbox
from tests.support.bot_harness import ALICE, BOB, CAROL


def policy_for(tool: str) -> Policy:
    return parse_policy(
        f"""
[defaults]
approvers = []

[tools.{tool}]
approvers = ["{ALICE}", "{BOB}"]
quorum = 2

[[tools.{tool}.rules]]
name = "after hours"
when = "time.getHours() >= 18"
approvers = ["{BOB}"]

[[tools.{tool}.rules]]
name = "production"
when = 'args.env == "prod"'
approvers = ["{CAROL}"]
""",
        "p.toml",
    )


@pytest.fixture
async def lister(database_url: str) -> AsyncIterator[tuple[WaitingLister, str, Policy]]:
    tool = f"deploy_{uuid.uuid4().hex[:8]}"
    policy = policy_for(tool)
    config = SandboxConfig(port=0, bot_url="http://127.0.0.1:9/none", retry_delays=())
    async with running_sandbox(config) as sandbox, open_pool(database_url, max_size=4) as pool:
        await migrate_bot(pool)
        client = AsyncWebClient(token=config.bot_token, base_url=sandbox.api_url)
        flow = ReviewFlow(None, BotStore(pool), client, Approvers(policy, client))  # type: ignore[arg-type]
        yield lister_for(flow), tool, policy


async def add(waiting: WaitingLister, policy: Policy, tool: str, at: datetime, **args: Any) -> str:
    request: Any = {
        "question": "?",
        "tool_call": {"name": tool, "args": args, "id": uuid.uuid4().hex},
        "tool": {"name": tool, "description": "Deploy.", "args_schema": {}},
        "requested_by": "U0DAN",
    }
    call = policy.for_call(tool, args, requester="U0DAN", channel="C0GENERAL", now=at)
    ref = await waiting.store.add_review(
        f"t-{uuid.uuid4().hex[:8]}", "i1", "T0", "C0GENERAL", "1.1", request,
        policy_match=call.stored(),
    )  # fmt: skip
    assert ref is not None
    # registered at ``at`` in the row too: an edit is resolved at the review's own time, which
    # would otherwise be the clock's now (and "after hours" from 18:00 UTC)
    async with waiting.store.pool.connection() as conn:
        await conn.execute("UPDATE slack_reviews SET created_at = %s WHERE ref = %s", (at, ref))
    return ref


async def test_home_lists_each_review_under_its_stored_rule(
    lister: tuple[WaitingLister, str, Policy],
) -> None:
    waiting, tool, policy = lister
    evening = datetime(2026, 12, 2, 19, 0, tzinfo=UTC)
    morning = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    late = await add(waiting, policy, tool, evening, env="staging")  # after hours: Bob only
    early = await add(waiting, policy, tool, morning, env="staging")  # defaults: Alice, Bob
    prod = await add(waiting, policy, tool, morning, env="prod")  # production: Carol
    # Now is neither of those times: what was stored decides.
    assert [r.ref for r in (await waiting.waiting_for(ALICE)).shown] == [early]
    assert sorted(r.ref for r in (await waiting.waiting_for(BOB)).shown) == sorted([late, early])
    assert [r.ref for r in (await waiting.waiting_for(CAROL)).shown] == [prod]
    # An edit awaiting its quorum that moves the early one to production: Bob approved the
    # proposal's terms, but now Carol's rule applies too, and nobody is both.
    edited = await waiting.store.propose_edit(early, 0, {"env": "prod"}, BOB)
    assert edited is not None
    for user in (ALICE, BOB, CAROL):
        assert early not in [r.ref for r in (await waiting.waiting_for(user)).shown]
