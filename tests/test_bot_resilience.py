"""Slack misbehaving: rate limits and outages are retried; a message Slack would not update is
repainted later; the decision is never lost. Plus Slack's URL check of the request URL."""

from __future__ import annotations

import json
import time

from bot.sweeper import sweep_once
from tests.support.bot_harness import (
    ALICE,
    BOT,
    SlackEnv,
    card_recorded,
    review_messages,
    text_of,
)


def reviewed(env: SlackEnv, thread: str, ts: str) -> str:
    return text_of(next(m for m in env.sandbox.replies("C0GENERAL", thread) if m["ts"] == ts))


async def test_rate_limits_and_server_errors_are_retried(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Lima?")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    sandbox.web_api.fail_next("chat.update", 429)
    sandbox.web_api.fail_next("chat.postMessage", 503)
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(lambda: "Approved by" in reviewed(env, thread, review["ts"]), 10)
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Done." in text_of(m)], 10
    )
    failed = [c.error for c in sandbox.workspace.calls if not c.ok]
    assert "ratelimited" in failed and "fatal_error" in failed


async def test_an_update_slack_keeps_refusing_is_repainted_by_the_sweeper(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Quito?")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
    await card_recorded(env, review)  # so the decision is painted once, by the click
    sandbox.web_api.fail_next("chat.update", 500, 500, 500, 500)  # beyond the SDK's retries
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies("C0GENERAL", thread) if "Done." in text_of(m)], 15
    )
    assert "Approved by" not in reviewed(env, thread, review["ts"])  # Slack never took it
    report = await sweep_once(env.bot.flow)
    assert report.repainted == 1
    assert "Approved by <@U0ALICE>" in reviewed(env, thread, review["ts"])
    assert (await sweep_once(env.bot.flow)).repainted == 0


async def test_slack_checks_the_request_url(env: SlackEnv) -> None:
    body = json.dumps({"type": "url_verification", "token": "x", "challenge": "c-123"}).encode()
    response = await env.sandbox.send_raw(body)
    assert (response.status, response.json()) == (200, {"challenge": "c-123"})
    old = int(time.time()) - 600
    assert (await env.sandbox.send_raw(body, timestamp=old)).status == 401
