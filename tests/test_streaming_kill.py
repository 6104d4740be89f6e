"""kill -9 the bot (a real ``python -m bot`` process) while it streams a reply: once it is
restarted, the sweeper stops the stream the dead process left open, so the message ends as an
ordinary one instead of staying "typing"; and the person still gets their whole reply."""

from __future__ import annotations

from pathlib import Path

from sandbox.server import running_sandbox
from tests.support.bot_harness import ALICE, BOT
from tests.support.chaos import (
    BotProcess,
    Forwarder,
    HoldFirst,
    bot_replies,
    bounded_wait,
    free_port,
    fresh_database,
    quick_recovery_env,
    sandbox_for_bot,
)

GENERAL = "C0GENERAL"


async def test_a_stream_cut_by_a_kill_is_closed_after_the_restart(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = sandbox_for_bot(port)
    append = HoldFirst("chat.appendStream")  # mid-stream: started, and more being written
    async with (
        fresh_database(database_url, "stream_kill") as db_url,
        running_sandbox(config) as sandbox,
        Forwarder([sandbox.url], hold=append.hold) as api,
    ):
        bot = BotProcess(
            quick_recovery_env(config, api.url, db_url, port), tmp_path / "bot.log", port
        )
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
