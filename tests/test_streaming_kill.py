"""kill -9 the bot (a real ``python -m bot`` process) while it streams a reply: once it is
restarted, the sweeper stops the stream the dead process left open, so the message ends as an
ordinary one instead of staying "typing"; and the person still gets their whole reply."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sandbox.config import SandboxConfig
from sandbox.server import running_sandbox
from tests.support.bot_harness import ALICE, BOT
from tests.support.chaos import (
    BotProcess,
    Forwarder,
    bot_env,
    bot_replies,
    bounded_wait,
    free_port,
    fresh_database,
)

GENERAL = "C0GENERAL"


class HoldFirst:
    """Holds the Web API answer to the first call of one method until released."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self, path: str, request: bytes, response: bytes) -> None:
        if path.endswith(f"/{self.method}") and not self.held.is_set():
            self.held.set()
            await asyncio.wait_for(self.release.wait(), 30)  # until the bot was killed


async def test_a_stream_cut_by_a_kill_is_closed_after_the_restart(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = SandboxConfig(
        port=0,
        bot_url=f"http://127.0.0.1:{port}/slack/events",
        retry_delays=(1.0, 2.0, 4.0),
        deliver_bot_messages=False,
    )
    append = HoldFirst("chat.appendStream")  # mid-stream: started, and more being written
    async with (
        fresh_database(database_url, "stream_kill") as db_url,
        running_sandbox(config) as sandbox,
        Forwarder([sandbox.url], hold=append.hold) as api,
    ):
        env = bot_env(
            SLACK_BOT_TOKEN=config.bot_token,
            SLACK_SIGNING_SECRET=config.signing_secret,
            SLACK_API_URL=f"{api.url}/api/",
            DATABASE_URL=db_url,
            HOST="127.0.0.1",
            PORT=str(port),
            SWEEP_SECONDS="0.5",
            RECOVER_AFTER_SECONDS="2",
            THREAD_LEASE_SECONDS="2",
            LOG_FORMAT="text",
        )
        bot = BotProcess(env, tmp_path / "bot.log", port)
        await bot.start()
        try:
            thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> tell me a story")
            assert await bounded_wait(append.held.is_set, 30)
            [cut] = bot_replies(sandbox, GENERAL, thread)
            assert cut.get("streaming"), cut  # the dead process left it being written
            bot.kill()
            await bot.wait_dead()
            append.release.set()
            await bot.start()

            def settled() -> bool:
                replies = bot_replies(sandbox, GENERAL, thread)
                whole = any("Set `ANTHROPIC_API_KEY`" in str(m.get("text")) for m in replies)
                return whole and not any(m.get("streaming") for m in replies)

            done = await bounded_wait(settled, 60)
        finally:
            await bot.stop()
        assert done, bot_replies(sandbox, GENERAL, thread)
        stopped = [c.args.get("ts") for c in sandbox.calls_of("chat.stopStream")]
        assert cut["ts"] in stopped  # the sweeper stopped the stream the kill cut
