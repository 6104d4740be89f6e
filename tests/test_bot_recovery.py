"""What a process that died mid-way leaves behind is finished by the sweeper: here, a mention
whose review was registered but never shown."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from bot.sweeper import sweep_once
from tests.support.bot_harness import ALICE, BOT, review_messages, running_slack_env


async def test_a_review_registered_but_never_shown_is_shown(database_url: str) -> None:
    async with running_slack_env(database_url) as env:
        sandbox, pool = env.sandbox, env.bot.service.pool
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Bogota?")
        [shown] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        [mention] = [
            d.body
            for d in sandbox.workspace.deliveries
            if d.body.get("event", {}).get("type") == "app_mention"
            and d.body["event"]["ts"] == thread
        ]
        # Rewind to the moment the process died: the review registered, its message not yet
        # posted, the event claimed and not finished.
        sandbox.workspace.messages["C0GENERAL"] = [
            m for m in sandbox.workspace.messages["C0GENERAL"] if m.ts != shown["ts"]
        ]
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE slack_reviews SET message_ts = NULL WHERE thread_ts = %s", (thread,)
            )
            await conn.execute(
                "UPDATE slack_events SET status = 'handling', body = %s, "
                "claimed_at = now() - interval '1 hour' WHERE event_id = %s",
                (Jsonb(mention), mention["event_id"]),
            )
        report = await sweep_once(env.bot.flow, stuck_after=60)
        assert report.reanswered == 1
        [again] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        assert again["ts"] != shown["ts"]
        await sandbox.click_button(ALICE, "C0GENERAL", again["ts"], "review_approve")
        await sandbox.wait_for_call("chat.postMessage", lambda c: "Done." in c.args["text"])
        assert (await sweep_once(env.bot.flow, stuck_after=60)).reanswered == 0
