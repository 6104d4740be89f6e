"""Escalation end to end through Slack (sandbox, signed HTTP, real PostgreSQL): a review still
undecided after ``escalate_after`` pings ``escalate_to`` in the card's thread, once across
replicas, and they may decide it from then on (not before); a review decided first is never
escalated. The clock is the database's: a test moves a review's ``escalate_at`` into the past,
as the expiry tests move ``expires_at``, and runs the sweeper itself (the bots here never sweep
on their own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from bot.audit import AuditLog
from bot.flow import ReviewFlow
from bot.server import running_bot
from bot.sweeper import sweep_once
from graph.db import Pool
from sandbox.server import Sandbox
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    review_ref,
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls

GENERAL = "C0GENERAL"
WAIT = 20.0  # seconds for a turn, a click and their posts, on a busy machine
ONCALL = "S0ONCALL"
POLICY = """\
[tools.record_note]
approvers = ["U0ALICE"]
escalate_after = "30m"
escalate_to = ["S0ONCALL"]
"""


def note_model() -> ScriptedModel:
    """Proposes the note for each request, and says "Noted." once it ran (in any thread)."""

    def reply(seen: list[BaseMessage]) -> AIMessage:
        if isinstance(seen[-1], ToolMessage):
            return AIMessage("Noted.")
        return tool_calls(("record_note", {"note": "ship it"}))

    return ScriptedModel([reply] * 10)


def with_oncall(extra: Callable[[Sandbox], None] | None = None) -> Callable[[Sandbox], None]:
    """The on-call user group: Bob (who is no approver of record_note)."""

    def prepare(sandbox: Sandbox) -> None:
        sandbox.workspace.usergroups[ONCALL] = {
            "id": ONCALL,
            "handle": "oncall",
            "name": "oncall",
            "description": "Whoever is on call",
            "users": [BOB],
        }
        if extra is not None:
            extra(sandbox)

    return prepare


def note_env(
    database_url: str,
    tmp_path: Path,
    policy: str = POLICY,
    extra: Callable[[Sandbox], None] | None = None,
) -> AbstractAsyncContextManager[SlackEnv]:
    """The bot with ``policy`` (written to a file), the note model and the on-call group (plus
    ``extra`` set-up of the workspace); the notes recorded so far forgotten."""
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    RUNS.clear()
    return running_slack_env(
        database_url,
        model=note_model(),
        registry=registry_with(),
        policy_file=path,
        before_bot=with_oncall(extra),
    )


@pytest.fixture
async def env(database_url: str, tmp_path: Path) -> AsyncIterator[SlackEnv]:
    async with note_env(database_url, tmp_path) as slack_env:
        yield slack_env


async def open_review(sandbox: Sandbox) -> tuple[str, dict[str, Any], str]:
    thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note: ship it")
    [review] = await sandbox.wait_for(
        lambda: review_messages(sandbox, GENERAL, thread), within=WAIT
    )
    return thread, review, review_ref(review)


async def due_now(pool: Pool, ref: str) -> None:
    """Let the review's escalation fall due now (without waiting out its 30 minutes), once the
    bot has stored where its card is (on a busy machine the card can be on screen a moment
    before its ts is stored; the ping goes to the card's thread)."""
    async with asyncio.timeout(WAIT):
        while True:
            async with pool.connection() as conn:
                stored = await (
                    await conn.execute(
                        "UPDATE slack_reviews SET escalate_at = now() - interval '1 second' "
                        "WHERE ref = %s AND message_ts IS NOT NULL RETURNING ref",
                        (ref,),
                    )
                ).fetchone()
            if stored is not None:
                return
            await asyncio.sleep(0.05)


def pings(sandbox: Sandbox, channel: str, thread: str) -> list[str]:
    return [
        text_of(m) for m in sandbox.replies(channel, thread) if ":rotating_light:" in text_of(m)
    ]


async def escalations(pool: Pool, thread: str) -> list[dict[str, Any]]:
    rows = await AuditLog(pool).query(tool="record_note", outcome="escalated")
    return [r for r in rows if r["thread_id"].endswith(thread)]


async def escalated(flow: ReviewFlow, ref: str) -> bool:
    row = await flow.store.get(ref)
    return row is not None and row.escalated_at is not None


async def listed_to(flow: ReviewFlow, user: str) -> list[str]:
    return [review.ref for review in (await flow.lister.waiting_for(user)).shown]


async def test_an_escalation_target_may_decide_after_escalation_and_not_before(
    env: SlackEnv,
) -> None:
    sandbox, flow, pool = env.sandbox, env.bot.flow, env.bot.service.pool
    thread, review, ref = await open_review(sandbox)

    await sandbox.click_button(BOB, GENERAL, review["ts"], "review_approve")
    [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(BOB), within=WAIT)
    assert "may decide" in refusal["text"]
    assert ref not in await listed_to(flow, BOB)  # App Home and /approvals: not yet his
    await sweep_once(flow)  # not due for 30 minutes
    assert not await escalated(flow, ref)
    assert RUNS == [] and not pings(sandbox, GENERAL, thread)

    await due_now(pool, ref)
    assert (await sweep_once(flow)).escalated >= 1  # other tests' reviews share the database
    assert await escalated(flow, ref)
    [ping] = await sandbox.wait_for(lambda: pings(sandbox, GENERAL, thread), within=WAIT)
    assert f"<!subteam^{ONCALL}>" in ping and "record_note" in ping
    [event] = await escalations(pool, thread)
    assert event["detail"] == ONCALL and event["decided_by"] is None
    assert ref in await listed_to(flow, BOB)

    await sandbox.click_button(BOB, GENERAL, review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies(GENERAL, thread) if "Noted." in text_of(m)], within=WAIT
    )
    assert RUNS == ["ship it"]
    await sweep_once(flow)
    assert len(pings(sandbox, GENERAL, thread)) == 1
    assert len(await escalations(pool, thread)) == 1


async def test_a_review_decided_before_its_escalation_pings_nobody(env: SlackEnv) -> None:
    sandbox, flow, pool = env.sandbox, env.bot.flow, env.bot.service.pool
    thread, review, ref = await open_review(sandbox)
    await sandbox.click_button(ALICE, GENERAL, review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies(GENERAL, thread) if "Noted." in text_of(m)], within=WAIT
    )
    await due_now(pool, ref)
    await sweep_once(flow)
    assert not await escalated(flow, ref)
    assert not pings(sandbox, GENERAL, thread)
    assert await escalations(pool, thread) == []


async def test_four_eyes_still_applies_to_an_escalation_target(
    database_url: str, tmp_path: Path
) -> None:
    """Bob asked for the call: joining the approvers on escalation does not let him approve
    his own request."""
    async with note_env(database_url, tmp_path, POLICY + "four_eyes = true\n") as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(BOB, "#general", f"<@{BOT}> note: ship it")
        [review] = await sandbox.wait_for(
            lambda: review_messages(sandbox, GENERAL, thread), within=WAIT
        )
        await due_now(env.bot.service.pool, review_ref(review))
        await sweep_once(env.bot.flow)
        assert await escalated(env.bot.flow, review_ref(review))
        await sandbox.click_button(BOB, GENERAL, review["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(BOB), within=WAIT)
        assert "four-eyes" in refusal["text"] and RUNS == []


async def test_escalation_happens_once_across_two_replicas(env: SlackEnv) -> None:
    """Two bots on one database sweep at the same moment, several times: each due review is
    escalated by exactly one of them, pinged once, audited once."""
    sandbox, pool = env.sandbox, env.bot.service.pool
    opened = [await open_review(sandbox) for _ in range(3)]
    async with running_bot(env.bot.settings, model=note_model(), registry=registry_with()) as other:
        for _, _, ref in opened:
            await due_now(pool, ref)
        reports = [
            report
            for _ in range(3)
            for report in await asyncio.gather(sweep_once(env.bot.flow), sweep_once(other.flow))
        ]
    assert sum(r.escalated for r in reports) >= 3  # (and others' left due in the database)
    for thread, _, _ in opened:
        await sandbox.wait_for(lambda: pings(sandbox, GENERAL, thread), within=WAIT)  # noqa: B023
        assert len(pings(sandbox, GENERAL, thread)) == 1
        assert len(await escalations(pool, thread)) == 1


async def test_a_routed_card_is_escalated_in_its_own_thread(
    database_url: str, tmp_path: Path
) -> None:
    def finance(sandbox: Sandbox) -> None:
        room = sandbox.workspace.create_channel("finance-approvals", ALICE)
        sandbox.workspace.invite(room.id, [BOT, BOB])

    policy = POLICY + 'channel = "#finance-approvals"\n'
    async with note_env(database_url, tmp_path, policy, finance) as env:
        sandbox = env.sandbox
        room = next(
            c.id for c in sandbox.workspace.channels.values() if c.name == "finance-approvals"
        )
        thread = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> note: ship it")
        [card] = await sandbox.wait_for(
            lambda: [m for m in sandbox.messages(room) if m.get("bot_id")], within=WAIT
        )
        await due_now(env.bot.service.pool, review_ref(card))
        await sweep_once(env.bot.flow)
        [ping] = await sandbox.wait_for(lambda: pings(sandbox, room, card["ts"]), within=WAIT)
        assert f"<!subteam^{ONCALL}>" in ping
        assert not pings(sandbox, GENERAL, thread)
        await sandbox.click_button(BOB, room, card["ts"], "review_approve")
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies(GENERAL, thread) if "Noted." in text_of(m)],
            within=WAIT,
        )
        assert RUNS == ["ship it"]
