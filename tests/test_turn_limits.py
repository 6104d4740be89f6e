"""One person cannot flood the agent: per-person and per-workspace limits on turns started per
minute and running at once, enforced in PostgreSQL (so across replicas), with one polite answer
per burst and nothing lost for anyone else.

End to end through the Slack sandbox with a model that counts its calls; the cross-replica
property with two limiters on two connection pools over one database.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from bot.config import TURN_LIMIT_VARIABLES, BotSettings, ConfigError
from bot.limits import Admitted, Limited, TurnLimiter, TurnLimits
from bot.migrations import migrate_bot
from graph.db import open_pool
from sandbox.server import Sandbox
from tests.support.bot_harness import ALICE, BOB, BOT, running_slack_env, text_of
from tests.support.chaos import fresh_database, scalar

POLITE = "Sorry, I didn't start on this"


class CountingModel:
    """Answers every turn with one reply, counting calls; optionally holds each call until
    released (to keep turns running)."""

    def __init__(self, *, hold: bool = False) -> None:
        self.calls = 0
        self.running = 0
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    def bind_tools(self, tools: Sequence[Any]) -> CountingModel:
        return self

    async def ainvoke(
        self, input: Sequence[BaseMessage], config: RunnableConfig | None = None
    ) -> AIMessage:
        self.calls += 1
        self.running += 1
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return AIMessage(content=f"reply #{self.calls}")


def bot_messages(sandbox: Sandbox, needle: str) -> list[dict[str, Any]]:
    messages = (m.to_dict() for m in sandbox.workspace.messages.get("C0GENERAL", []))
    return [m for m in messages if m.get("user") == BOT and needle in text_of(m)]


@pytest.fixture
async def db_url(database_url: str) -> AsyncIterator[str]:
    async with fresh_database(database_url, "limits") as url:
        yield url


async def until_count(db_url: str, where: str, count: int, within: float = 60) -> int:
    """Poll (bounded) until that many Slack events match ``where``; the last count."""
    sql = f"SELECT count(*) FROM slack_events WHERE {where}"
    deadline = asyncio.get_running_loop().time() + within
    while (found := int(await scalar(db_url, sql))) != count:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    return found


async def test_sixty_mentions_from_one_person_start_at_most_the_limit(db_url: str) -> None:
    model = CountingModel()
    limits = TurnLimits(per_user_per_minute=5, concurrent_per_user=0)
    async with running_slack_env(db_url, model=model, turn_limits=limits) as env:
        sandbox = env.sandbox
        await asyncio.gather(
            *(sandbox.post_message(ALICE, "#general", f"<@{BOT}> question {i}") for i in range(60))
        )
        await sandbox.settle(60)
        assert await until_count(db_url, "status = 'done'", 60) == 60  # all handled
        assert 1 <= model.calls <= 5
        assert len(bot_messages(sandbox, "reply #")) == model.calls
        [notice] = bot_messages(sandbox, POLITE)  # once for the burst, not 55 times
        assert "5 things in the last minute" in text_of(notice)
        assert await until_count(db_url, "status <> 'done'", 0) == 0  # none left to retry

        before = model.calls
        thread = await sandbox.post_message(BOB, "#general", f"<@{BOT}> my own question")
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies("C0GENERAL", thread) if m.get("user") == BOT], 30
        )
        assert model.calls == before + 1  # Bob is not held up by Alice's flood
        assert len(bot_messages(sandbox, POLITE)) == 1


async def test_turns_running_at_once_are_limited_and_freed_when_done(db_url: str) -> None:
    model = CountingModel(hold=True)
    limits = TurnLimits(per_user_per_minute=0, concurrent_per_user=2)
    async with running_slack_env(db_url, model=model, turn_limits=limits) as env:
        sandbox = env.sandbox
        for i in range(6):
            await sandbox.post_message(ALICE, "#general", f"<@{BOT}> slow question {i}")
        await sandbox.wait_for(lambda: model.running == 2 and bot_messages(sandbox, POLITE), 30)
        await sandbox.settle(30)
        assert await until_count(db_url, "status = 'done'", 4) == 4  # the refused ones
        assert await until_count(db_url, "status <> 'done'", 2) == 2  # the two running
        assert model.calls == 2
        assert "still working on 2 of your requests" in text_of(bot_messages(sandbox, POLITE)[0])

        model.release.set()
        await sandbox.wait_for(lambda: len(bot_messages(sandbox, "reply #")) == 2, 30)
        assert await until_count(db_url, "status <> 'done'", 0) == 0  # both over: room again
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> one more")
        await sandbox.wait_for(
            lambda: [m for m in sandbox.replies("C0GENERAL", thread) if m.get("user") == BOT], 30
        )
        assert model.calls == 3
        assert len(bot_messages(sandbox, POLITE)) == 1


# -- the limiter itself, as two replicas would use it ------------------------------------------


@pytest.fixture
async def replicas(db_url: str) -> tuple[str, str]:
    async with open_pool(db_url, max_size=4) as pool:
        await migrate_bot(pool)
    return db_url, f"T{uuid.uuid4().hex[:8].upper()}"


async def test_two_replicas_never_admit_more_than_the_limit(replicas: tuple[str, str]) -> None:
    db_url, team = replicas
    limits = TurnLimits(per_user_per_minute=7, concurrent_per_user=0)
    async with open_pool(db_url, max_size=8) as one, open_pool(db_url, max_size=8) as two:
        limiters = [TurnLimiter(one, limits), TurnLimiter(two, limits)]
        verdicts = await asyncio.gather(
            *(limiters[i % 2].admit(f"Ev{i}", team, "U0ALICE") for i in range(40))
        )
    admitted = [v for v in verdicts if isinstance(v, Admitted)]
    refused = [v for v in verdicts if isinstance(v, Limited)]
    assert len(admitted) == 7 and len(refused) == 33
    assert sum(v.tell for v in refused) == 1  # one answer for the burst
    assert {v.reason for v in refused} == {"user_minute"}


async def test_the_workspace_limit_counts_everyone_and_retries_stay_admitted(
    replicas: tuple[str, str],
) -> None:
    db_url, team = replicas
    limits = TurnLimits(per_user_per_minute=3, concurrent_per_user=0, per_workspace_per_minute=4)
    async with open_pool(db_url, max_size=4) as pool:
        limiter = TurnLimiter(pool, limits)
        alice = [await limiter.admit(f"EvA{i}", team, "U0ALICE") for i in range(4)]
        assert [type(v) for v in alice] == [Admitted, Admitted, Admitted, Limited]
        assert await limiter.admit("EvA0", team, "U0ALICE") == Admitted()  # a retry
        assert isinstance(await limiter.admit("EvB0", team, "U0BOB"), Admitted)
        bob = await limiter.admit("EvB1", team, "U0BOB")
        assert isinstance(bob, Limited) and bob.reason == "workspace_minute" and bob.tell
        elsewhere = await limiter.admit("EvC0", team + "X", "U0ALICE")
        assert isinstance(elsewhere, Admitted)  # another workspace counts for itself


async def test_running_turns_are_those_whose_event_is_still_handled(
    replicas: tuple[str, str],
) -> None:
    db_url, team = replicas
    limits = TurnLimits(per_user_per_minute=0, concurrent_per_user=1)
    async with open_pool(db_url, max_size=4) as pool:
        limiter = TurnLimiter(pool, limits)
        first = f"Ev{uuid.uuid4().hex[:8]}"
        await scalar(
            db_url,
            "INSERT INTO slack_events (event_id, status) VALUES (%s, 'handling') RETURNING 1",
            [first],
        )
        assert isinstance(await limiter.admit(first, team, "U0ALICE"), Admitted)
        assert isinstance(await limiter.admit(first + "b", team, "U0ALICE"), Limited)
        await scalar(
            db_url,
            "UPDATE slack_events SET status = 'done' WHERE event_id = %s RETURNING 1",
            [first],
        )
        assert isinstance(await limiter.admit(first + "c", team, "U0ALICE"), Admitted)


# -- configuration ---------------------------------------------------------------------------


def test_limits_are_read_from_the_environment() -> None:
    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    assert BotSettings.from_env(base).turn_limits == TurnLimits()
    env = {**base, "TURNS_PER_USER_PER_MINUTE": "4", "CONCURRENT_TURNS_PER_WORKSPACE": "0"}
    limits = BotSettings.from_env(env).turn_limits
    assert (limits.per_user_per_minute, limits.concurrent_per_workspace) == (4, 0)
    assert limits.concurrent_per_user == TurnLimits().concurrent_per_user
    for bad in ("-1", "ten", "1.5", "\u0663"):
        with pytest.raises(ConfigError, match="CONCURRENT_TURNS_PER_USER"):
            BotSettings.from_env({**base, "CONCURRENT_TURNS_PER_USER": bad})


def test_the_limits_are_documented_with_their_defaults() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    example = (root / ".env.example").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], cwd=root, capture_output=True, text=True
    )
    defaults = TurnLimits()
    for name, attribute in TURN_LIMIT_VARIABLES.items():
        default = getattr(defaults, attribute)
        assert re.search(rf"^\| `{name}` \|.*\| `{default}` \|$", readme, re.MULTILINE), name
        assert f"\n{name}={default}\n" in example, name
        assert re.search(rf"^  {name}\s", done.stdout, re.MULTILINE), name
        assert f"(default {default}" in done.stdout.split(name, 1)[1][:200], name
