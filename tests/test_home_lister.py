"""Whose list a pending review lands on: the policy's approvers (users and user groups) minus
the requester under four-eyes, read from real PostgreSQL, with the workspace URL from a real
``auth.test`` (the sandbox's) looked up once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg.rows import tuple_row
from slack_sdk.web.async_client import AsyncWebClient

from bot import home
from bot.flow import ReviewFlow
from bot.listeners.home import WaitingLister, lister_for
from bot.migrations import migrate_bot
from bot.permissions import Approvers
from bot.policy import Policy, ToolPolicy
from bot.store import BotStore
from graph.db import open_pool
from graph.decisions import Approve
from sandbox import SandboxConfig, running_sandbox
from tests.support.bot_harness import ALICE, BOB, CAROL

NOBODY: frozenset[str] = frozenset()


@pytest.fixture
async def lister(database_url: str) -> AsyncIterator[tuple[WaitingLister, str]]:
    """A lister whose policy knows one tool of this test only (every other tool: nobody),
    so reviews other tests left pending in the shared database never show up."""
    tool = f"deploy_{uuid.uuid4().hex[:8]}"
    policy = Policy(
        defaults=ToolPolicy(approvers=NOBODY),
        tools={tool: ToolPolicy(approvers=frozenset({CAROL, "S0APPROVERS"}), four_eyes=True)},
    )
    config = SandboxConfig(port=0, bot_url="http://127.0.0.1:9/none", retry_delays=())
    async with running_sandbox(config) as sandbox, open_pool(database_url, max_size=4) as pool:
        await migrate_bot(pool)
        await migrate_bot(pool)  # idempotent
        client = AsyncWebClient(token=config.bot_token, base_url=sandbox.api_url)
        flow = ReviewFlow(None, BotStore(pool), client, Approvers(policy, client))  # type: ignore[arg-type]
        yield lister_for(flow), tool
        assert [c.ok for c in sandbox.calls_of("auth.test")] in ([], [True])  # cached


def request(tool: str, requested_by: str, **args: Any) -> dict[str, Any]:
    return {
        "question": "?",
        "tool_call": {"name": tool, "args": args, "id": uuid.uuid4().hex},
        "tool": {"name": tool, "description": "Deploy.", "args_schema": {}},
        "requested_by": requested_by,
    }


async def add(store: BotStore, tool: str, requested_by: str, **args: Any) -> str:
    ref = await store.add_review(
        f"t-{uuid.uuid4().hex[:8]}",
        "i1",
        "T0",
        "C0GENERAL",
        "1.000001",
        request(tool, requested_by, **args),  # type: ignore[arg-type]
    )
    assert ref is not None
    return ref


async def add_asked(store: BotStore, asked: dict[str, Any]) -> str | None:
    """Register a review whose request was built (and changed) by the test itself."""
    return await store.add_review(
        f"t-{uuid.uuid4().hex[:8]}",
        "i1",
        "T0",
        "C0GENERAL",
        "1.000001",
        asked,  # type: ignore[arg-type]
    )


async def test_approvers_groups_and_four_eyes_decide_whose_list(
    lister: tuple[WaitingLister, str],
) -> None:
    waiting, tool = lister
    store = waiting.store
    by_alice = await add(store, tool, ALICE, env="staging")
    by_carol = await add(store, tool, CAROL, env="prod")
    decided = await add(store, tool, BOB, env="old")
    assert await store.claim(decided, Approve(CAROL)) is not None

    # Carol is named; she may not approve her own call (four-eyes), and 'deciding' is not pending.
    assert [r.ref for r in (await waiting.waiting_for(CAROL)).shown] == [by_alice]
    # Alice and Bob are in the user group S0APPROVERS; Alice asked for one of them herself.
    assert [r.ref for r in (await waiting.waiting_for(ALICE)).shown] == [by_carol]
    bob = await waiting.waiting_for(BOB)
    assert [r.ref for r in bob.shown] == [by_carol, by_alice]  # newest first
    assert bob.shown[0].args == {"env": "prod"} and bob.shown[0].requested_by == CAROL
    assert (await waiting.waiting_for("U0STRANGER")).shown == ()

    await store.release(decided)  # a released claim is pending again, so listed again
    assert [r.ref for r in (await waiting.waiting_for(CAROL)).shown] == [decided, by_alice]


async def test_more_than_twenty_are_counted_not_shown(lister: tuple[WaitingLister, str]) -> None:
    waiting, tool = lister
    for number in range(23):
        await add(waiting.store, tool, ALICE, n=number)
    mine = await waiting.waiting_for(BOB)
    assert len(mine.shown) == 20 and mine.more == 3 and not mine.more_is_lower_bound
    assert mine.shown[0].args == {"n": 22}


async def test_workspace_url_comes_from_auth_test_once(lister: tuple[WaitingLister, str]) -> None:
    waiting, _ = lister
    first = await waiting.workspace_url()
    assert first is not None and first.startswith("http://127.0.0.1:") and first.endswith("/")
    assert await waiting.workspace_url() == first


async def test_four_eyes_in_the_list_covers_everyone_whose_words_led_to_the_call(
    lister: tuple[WaitingLister, str],
) -> None:
    """Bob started the turn, but Alice's words are in it too: a click by either is refused,
    so neither may find the review on their list (Carol, who said nothing, does)."""
    waiting, tool = lister
    store = waiting.store
    asked = request(tool, BOB, env="prod")
    asked["requesters"] = [ALICE, BOB]
    ref = await add_asked(store, asked)
    assert ref is not None
    assert ref not in [r.ref for r in (await waiting.waiting_for(ALICE)).shown]
    assert ref not in [r.ref for r in (await waiting.waiting_for(BOB)).shown]
    assert ref in [r.ref for r in (await waiting.waiting_for(CAROL)).shown]


async def test_the_list_shows_an_edit_awaiting_its_quorum_not_the_first_proposal(
    lister: tuple[WaitingLister, str],
) -> None:
    """What you see is what would run: once an edit replaced the proposal, the list shows it."""
    waiting, tool = lister
    store = waiting.store
    ref = await add(store, tool, ALICE, env="staging", region="eu")
    row = await store.get(ref)
    assert row is not None
    assert await store.propose_edit(ref, row.version, {"region": "us", "env": "prod"}, BOB)
    [shown] = [r for r in (await waiting.waiting_for(CAROL)).shown if r.ref == ref]
    assert list(shown.args.items()) == [("env", "prod"), ("region", "us")]


async def test_a_review_registered_before_the_listed_columns_is_listed_the_same(
    lister: tuple[WaitingLister, str],
) -> None:
    """The trigger copies the request's listed fields (bot migration step 13); a row from
    before it (the copies NULL) is parsed from its request instead, to the same row."""
    waiting, tool = lister
    asked = request(tool, BOB, env="prod", region="eu")
    asked["requesters"] = [ALICE, BOB]
    ref = await add_asked(waiting.store, asked)
    async with waiting.store.pool.connection() as conn:
        listed = await (
            await conn.execute(
                "SELECT listed_args::text AS args, listed_by, listed_requesters::text AS requesters"
                " FROM slack_reviews WHERE ref = %s",
                (ref,),
            )
        ).fetchone()
        assert listed == {
            "args": '{"env": "prod", "region": "eu"}',
            "listed_by": BOB,
            "requesters": f'["{ALICE}", "{BOB}"]',
        }

        async def row() -> tuple[object, ...]:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(home.PENDING_SQL, (home.SCAN_LIMIT,))
            [mine] = [r for r in await cursor.fetchall() if r[0] == ref]
            return mine

        with_columns = await row()
        await conn.execute(
            "UPDATE slack_reviews SET listed_args = NULL, listed_by = NULL,"
            " listed_requesters = NULL WHERE ref = %s",
            (ref,),
        )
        assert await row() == with_columns
    [shown] = [r for r in (await waiting.waiting_for(CAROL)).shown if r.ref == ref]
    assert list(shown.args.items()) == [("env", "prod"), ("region", "eu")]
    assert shown.requested_by == BOB and shown.requesters == (ALICE, BOB)
