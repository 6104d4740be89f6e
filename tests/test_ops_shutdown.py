"""Graceful shutdown: a stop request while an approved tool is still running closes the door to
new requests at once, but the decision already acknowledged in Slack is carried through and
its result posted before the server's drain returns (and so before the pool closes)."""

from __future__ import annotations

import asyncio

import httpx
from langchain_core.messages import AIMessage

from bot.config import BotSettings
from bot.server import running_bot, serve_http
from graph import AgentSettings
from sandbox.config import SandboxConfig
from sandbox.server import running_sandbox
from tests.support.bot_harness import ALICE, BOT, listening_socket, review_messages, text_of
from tests.support.counting_tools import registry_with
from tests.support.faults import HeldExport
from tests.support.scripted_model import ScriptedModel, tool_calls


async def test_stop_waits_for_an_in_flight_decision(database_url: str) -> None:
    export = HeldExport()
    started, release = export.started, export.release
    model = ScriptedModel([tool_calls(("slow_export", {"table": "orders"})), AIMessage("all done")])
    sock = listening_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = SandboxConfig(port=0, bot_url=f"{base}/slack/events", retry_delays=(0.2,))
    async with running_sandbox(config) as sandbox:
        settings = BotSettings(
            bot_token=config.bot_token,
            signing_secret=config.signing_secret,
            api_url=sandbox.api_url,
            agent=AgentSettings(database_url=database_url),
        )
        async with (
            running_bot(settings, model=model, registry=registry_with(export.tool)) as bot,
            httpx.AsyncClient(base_url=base, timeout=5) as client,
        ):
            stop = asyncio.Event()
            serving = asyncio.create_task(serve_http(bot, stop, sock))
            ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> export the orders")
            [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", ts))
            assert (await client.get("/readyz")).status_code == 200
            await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
            await asyncio.wait_for(started.wait(), 10)

            stop.set()
            refused = False
            for _ in range(200):  # until the listening socket is closed
                try:
                    await client.get("/healthz")
                except httpx.ConnectError:
                    refused = True
                    break
                await asyncio.sleep(0.05)
            assert refused, "the server kept accepting connections after the stop request"
            assert bot.work.draining
            assert not serving.done(), "shutdown did not wait for the running decision"
            assert bot.work.tasks, "the decision's listener task is not tracked"
            assert not [m for m in sandbox.replies("C0GENERAL", ts) if "all done" in text_of(m)]

            release.set()
            await asyncio.wait_for(serving, 30)
            # Drained: the result was posted before serve_http returned, not after.
            replies = [text_of(m) for m in sandbox.replies("C0GENERAL", ts)]
            assert any("exported orders" in text for text in replies), replies
            assert any("all done" in text for text in replies), replies
            assert not bot.work.tasks
