"""Promises of "What is guaranteed" that no feature's own tests pinned: a reminder is posted
once across replicas. Two bots on one database sweep at the same moment, several times; the
reminder claim (``reminded_at`` set under ``FOR UPDATE SKIP LOCKED``) lets exactly one of them
post each due reminder. The clock is the database's: the test moves ``remind_at`` into the past
and runs the sweepers itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.server import running_bot
from bot.sweeper import sweep_once
from graph.db import Pool
from sandbox.server import Sandbox
from tests.support.bot_harness import (
    ALICE,
    BOT,
    review_messages,
    review_ref,
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls

GENERAL = "C0GENERAL"
WAIT = 20.0  # seconds for a turn and its posts, on a busy machine
POLICY = """\
[tools.record_note]
approvers = ["U0BOB"]
ttl = "2h"
remind_before = "1h"
"""


def note_model() -> ScriptedModel:
    return ScriptedModel([lambda seen: tool_calls(("record_note", {"note": "ship it"}))] * 10)


async def open_review(sandbox: Sandbox) -> tuple[str, str]:
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note: ship it")
    [review] = await sandbox.wait_for(
        lambda: review_messages(sandbox, GENERAL, thread), within=WAIT
    )
    return thread, review_ref(review)


async def remind_now(pool: Pool, ref: str) -> None:
    """Let the review's reminder fall due now (without waiting out its hour)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET remind_at = now() - interval '1 second' WHERE ref = %s",
            (ref,),
        )


def reminders(sandbox: Sandbox, thread: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.replies(GENERAL, thread) if ":alarm_clock:" in text_of(m)]


async def test_a_reminder_is_posted_once_across_two_replicas(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    RUNS.clear()
    async with running_slack_env(
        database_url, model=note_model(), registry=registry_with(), policy_file=path
    ) as env:
        sandbox, pool = env.sandbox, env.bot.service.pool
        opened = [await open_review(sandbox) for _ in range(3)]
        async with running_bot(
            env.bot.settings, model=note_model(), registry=registry_with()
        ) as other:
            for _, ref in opened:
                await remind_now(pool, ref)
            reports = [
                report
                for _ in range(3)
                for report in await asyncio.gather(sweep_once(env.bot.flow), sweep_once(other.flow))
            ]
        assert sum(r.reminded for r in reports) == 3
        for thread, _ in opened:
            await sandbox.wait_for(lambda: reminders(sandbox, thread), within=WAIT)  # noqa: B023
            assert len(reminders(sandbox, thread)) == 1
        assert RUNS == []
