"""Acknowledgements before decisions (``bot.transport.ackfirst``), over real HTTP: a click is
acknowledged while another request is still waiting for its answer, but its decision starts
only once no request is; a click told by its first bytes and acknowledged before it is parsed
is dropped, logged, if it then cannot be read.

No timing assertions: each step waits (bounded) for a state, never for an amount of time.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import AsyncIterator

import pytest

from bot.blocks import APPROVE
from bot.transport.ackfirst import AckFirst, gate
from tests.support.bot_harness import (
    ALICE,
    BOT,
    SlackEnv,
    review_messages,
    running_slack_env,
    text_of,
)

GENERAL = "C0GENERAL"


@pytest.fixture(scope="module")
async def env(database_url: str) -> AsyncIterator[SlackEnv]:
    async with running_slack_env(database_url) as slack_env:
        yield slack_env


@pytest.fixture
async def held_gate() -> AsyncIterator[AckFirst]:
    """This loop's gate, with no time limit on a hold while the test holds a request open."""
    requests = gate()
    longest, requests.longest = requests.longest, 600.0
    try:
        yield requests
    finally:
        requests.longest = longest


def has_buttons(message: dict[str, object]) -> bool:
    return APPROVE in str(message.get("blocks"))


async def test_a_decision_waits_until_no_request_awaits_its_answer(
    env: SlackEnv, held_gate: AckFirst
) -> None:
    sandbox = env.sandbox
    thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Accra?")
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, GENERAL, thread), 15)
    url = urllib.parse.urlsplit(env.bot_url)
    # A request whose body has not all arrived: it is waiting for its answer meanwhile.
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{"
    )
    await writer.drain()
    try:
        await sandbox.wait_for(lambda: held_gate.open >= 1, 10)
        click = await sandbox.click_button(ALICE, GENERAL, review["ts"], APPROVE)
        assert click.status == 200, click  # acknowledged while the other request is open
        await sandbox.wait_for(lambda: held_gate.waiting == 1, 10)
        [card] = review_messages(sandbox, GENERAL, thread)
        assert has_buttons(card), "the decision started while a request awaited its answer"
        writer.write(b"}")  # the held request completes (unsigned: 401), the gate opens
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 401")
    finally:
        writer.close()
    await sandbox.wait_for(
        lambda: [m for m in sandbox.replies(GENERAL, thread) if "Done." in text_of(m)], 15
    )
    assert held_gate.waiting == 0


async def test_a_gate_held_past_its_limit_lets_the_decision_go() -> None:
    """A steady stream of requests cannot starve decisions: each waits at most ``longest``."""
    requests = AckFirst(longest=0.01)
    requests.opened()
    assert await requests.quiet() is False
    requests.answered()
    assert await requests.quiet() is True


async def test_waiters_are_woken_when_the_last_request_is_answered() -> None:
    requests = AckFirst(longest=600.0)
    requests.opened()
    requests.opened()
    waiting = asyncio.create_task(requests.quiet())
    await asyncio.sleep(0)  # the task runs up to its wait
    assert requests.waiting == 1
    requests.answered()
    await asyncio.sleep(0)
    assert not waiting.done() and requests.waiting == 1  # one request is still unanswered
    requests.answered()
    assert await asyncio.wait_for(waiting, 10) is True


async def test_a_click_that_cannot_be_read_after_its_ack_is_dropped_and_logged(
    env: SlackEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """Told a click by its first bytes, acknowledged, then parsed: malformed, so dropped with
    a warning (it was signed; Slack sends no such body), not a crash or a 500."""
    body = b"payload=" + urllib.parse.quote_plus('{"type":"block_actions", nonsense').encode()
    with caplog.at_level(logging.WARNING, logger="bot.transport.http"):
        response = await env.sandbox.send_raw(body, "application/x-www-form-urlencoded")
        assert response.status == 200, response
        await env.sandbox.wait_for(
            lambda: [r for r in caplog.records if "dropped a signed click" in r.getMessage()], 10
        )
