"""PostgreSQL stops for about three seconds under load, then comes back.

The bot (in-process, real HTTP, signed requests) runs against its own embedded PostgreSQL, which
this test stops (``pg_ctl stop``, fast mode: every connection is cut) while people keep clicking
Approve and mentioning the bot. Nobody sees a crash: a click during the outage is told privately
that the database is unreachable and the review keeps its buttons (nothing half-applied), a
mention gets the same sentence in its thread, and once the database is back the same review can
be approved and new mentions get reviews again.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.flow import DB_DOWN
from bot.sweeper import sweep_once
from graph.db import start_embedded_postgres, stop_embedded_postgres
from sandbox.server import Sandbox
from tests.support.bot_harness import ALICE, BOB, BOT, running_slack_env, text_of
from tests.support.chaos import bot_replies, bounded_wait, buttons_of, review_of

GENERAL = "C0GENERAL"
OUTAGE_SECONDS = 3.0
TOOL = "weather_search"


class ErrorRecords(logging.Handler):
    """ERROR records of the given loggers (an exception escaping a listener lands here)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def own_postgres() -> Iterator[Path]:
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    data_dir = Path(tempfile.mkdtemp(prefix="approval-bot-chaos-pg-"))
    data_dir.chmod(0o755)
    try:
        yield data_dir
    finally:
        stop_embedded_postgres(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


async def review_in(sandbox: Sandbox, thread: str) -> dict[str, Any]:
    found = await bounded_wait(lambda: review_of(sandbox, GENERAL, thread, TOOL), 15)
    assert found, f"no review in {thread}: {bot_replies(sandbox, GENERAL, thread)}"
    return dict(found)


def said(sandbox: Sandbox, thread: str, words: str) -> bool:
    return any(words in text_of(m) for m in bot_replies(sandbox, GENERAL, thread))


async def test_database_outage_under_load_is_explained_and_recovered(own_postgres: Path) -> None:
    url = await asyncio.to_thread(start_embedded_postgres, own_postgres)
    errors = ErrorRecords()
    watched = [logging.getLogger(name) for name in ("slack_bolt", "uvicorn.error")]
    for logger in watched:
        logger.addHandler(errors)
    try:
        async with running_slack_env(url) as env:
            sandbox = env.sandbox
            health = httpx.AsyncClient(base_url=env.bot_url.removesuffix("/slack/events"))
            cities = ["Oslo", "Lima", "Rome", "Kyiv", "Bern", "Cairo"]
            threads = [
                await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in {city}?")
                for city in cities
            ]
            reviews = [await review_in(sandbox, thread) for thread in threads]

            await asyncio.to_thread(stop_embedded_postgres, own_postgres)
            stopped_at = time.monotonic()
            during_clicks: list[int] = []
            during_mentions: list[str] = []
            turn = 0
            while time.monotonic() - stopped_at < OUTAGE_SECONDS and turn < 12:
                if turn % 2 == 0 and len(during_clicks) < len(reviews) - 1:
                    index = len(during_clicks)
                    response = await sandbox.click_button(
                        BOB, GENERAL, reviews[index]["ts"], "review_approve"
                    )
                    assert response.status == 200
                    during_clicks.append(index)
                else:
                    during_mentions.append(
                        await sandbox.post_message(
                            ALICE, "#general", f"<@{BOT}> weather in Paris, take {turn}?"
                        )
                    )
                turn += 1
                await asyncio.sleep(0.25)
            assert during_clicks and during_mentions
            not_ready = (await health.get("/readyz")).status_code
            alive = (await health.get("/healthz")).status_code
            await asyncio.to_thread(start_embedded_postgres, own_postgres)
            ready_again = False
            deadline = time.monotonic() + 20
            while not ready_again and time.monotonic() < deadline:
                ready_again = (await health.get("/readyz")).status_code == 200
                await asyncio.sleep(0.1)

            # Each click made during the outage ends one of two whole ways: told privately that
            # the database is unreachable (the review keeps its buttons), or applied once the
            # pool reconnected (the click waited for it). Never in between.
            def click_outcome(index: int) -> str | None:
                review = review_of(sandbox, GENERAL, threads[index], TOOL) or {}
                if review.get("text") == f"Approved: {TOOL}" and said(
                    sandbox, threads[index], "Done."
                ):
                    return "applied"
                if buttons_of(review):
                    return "pending"
                return None

            def mention_outcome(thread: str) -> str | None:
                if said(sandbox, thread, DB_DOWN):
                    return "told"
                return "review" if review_of(sandbox, GENERAL, thread, TOOL) else None

            def told_privately(kept: bool = False) -> int:
                return len(
                    [
                        e
                        for e in sandbox.ephemerals(BOB)
                        if DB_DOWN in e["text"] and ("is kept" in e["text"]) == kept
                    ]
                )

            def settled() -> bool:
                outcomes = [click_outcome(i) for i in during_clicks]
                return (
                    None not in outcomes
                    and told_privately() == outcomes.count("pending")
                    and all(mention_outcome(t) for t in during_mentions)
                )

            # A decision the bot could neither apply nor release ("your decision is kept") is
            # finished by the sweeper: run it here with a short recovery time.
            deadline = time.monotonic() + 40  # the pool waits up to 30 s for a connection
            while not settled() and time.monotonic() < deadline:
                await sweep_once(env.bot.flow, stuck_after=3)
                await asyncio.sleep(0.5)
            was_settled = settled()
            clicks = Counter(click_outcome(i) for i in during_clicks)
            mentions = Counter(mention_outcome(t) for t in during_mentions)
            still_pending = [i for i in during_clicks if click_outcome(i) == "pending"]

            # Service is back: a fresh mention gets a review; the clicked reviews approve.
            after = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Riga?")
            fresh = await review_in(sandbox, after)
            for index in still_pending:
                await sandbox.click_button(ALICE, GENERAL, reviews[index]["ts"], "review_approve")
            await sandbox.click_button(ALICE, GENERAL, fresh["ts"], "review_approve")
            done = await bounded_wait(
                lambda: (
                    all(said(sandbox, threads[i], "Done.") for i in during_clicks)
                    and said(sandbox, after, "Done.")
                ),
                20,
            )
            await health.aclose()
            summary = {
                "clicks_during_outage": len(during_clicks),
                "mentions_during_outage": len(during_mentions),
                "clicks": dict(clicks),
                "told_privately": told_privately(),
                "kept_for_the_sweeper": told_privately(kept=True),
                "mentions": dict(mentions),
            }
            print("database outage summary:", summary)
    finally:
        for logger in watched:
            logger.removeHandler(errors)

    assert alive == 200 and not_ready == 503
    assert ready_again
    assert was_settled, summary
    assert done, summary
    assert [r.getMessage() for r in errors.records] == []
