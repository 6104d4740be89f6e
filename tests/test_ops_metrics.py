"""GET /metrics over real HTTP while a real review is decided in the Slack sandbox: the named
series exist and move the way an operator would read them."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.bot_harness import ALICE, BOT, review_messages, running_slack_env, text_of

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_move_when_a_review_is_approved(database_url: str) -> None:
    async with running_slack_env(database_url) as env:
        base = env.bot_url.removesuffix("/slack/events")
        sandbox = env.sandbox
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            before = await scrape(client)
            for name in (
                "approval_bot_reviews_pending",
                "approval_bot_decision_apply_seconds_count",
            ):
                assert (name, frozenset()) in before, name

            ts = await sandbox.post_message(
                ALICE, "#general", f"<@{BOT}> what's the weather in sf?"
            )
            [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", ts))
            waiting = await scrape(client)
            # Counted from PostgreSQL, shared with other tests' leftovers: compare, don't pin.
            assert value(waiting, "approval_bot_reviews_pending") >= 1
            assert value(waiting, "approval_bot_agent_run_seconds_count", kind="turn") > value(
                before, "approval_bot_agent_run_seconds_count", kind="turn"
            )

            await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
            await sandbox.wait_for(
                lambda: [m for m in sandbox.replies("C0GENERAL", ts) if "Done." in text_of(m)]
            )
            after = await scrape(client)

    applied = {"action": "continue", "result": "applied"}
    assert value(after, "approval_bot_decisions_total", **applied) == (
        value(before, "approval_bot_decisions_total", **applied) + 1
    )
    assert value(after, "approval_bot_decision_apply_seconds_count") == (
        value(before, "approval_bot_decision_apply_seconds_count") + 1
    )
    assert value(after, "approval_bot_agent_run_seconds_count", kind="resume") == (
        value(before, "approval_bot_agent_run_seconds_count", kind="resume") + 1
    )
    assert (
        value(after, "approval_bot_reviews_pending")
        == value(waiting, "approval_bot_reviews_pending") - 1
    )
