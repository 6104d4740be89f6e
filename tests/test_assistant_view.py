"""The assistant view (``features.assistant_view``): a conversation opened there gets the
suggested prompts, and works as a DM thread, one LangGraph thread per Slack thread."""

from __future__ import annotations

from bot.assistant_view import PROMPTS_TITLE, SUGGESTED_PROMPTS
from tests.support.bot_harness import ALICE, review_messages, running_slack_env, text_of

WITHIN = 60.0


async def test_a_conversation_in_the_assistant_view_gets_prompts_and_works_as_a_dm_thread(
    database_url: str,
) -> None:
    async with running_slack_env(database_url) as env:
        sandbox = env.sandbox
        dm = sandbox.open_dm(ALICE)
        first = sandbox.open_assistant_thread(ALICE)
        [asked] = await sandbox.wait_for(
            lambda: sandbox.calls_of("assistant.threads.setSuggestedPrompts"), WITHIN
        )
        assert asked.ok and asked.args["thread_ts"] == first
        assert asked.args["title"] == PROMPTS_TITLE
        assert asked.args["prompts"] == [dict(p) for p in SUGGESTED_PROMPTS]
        assert sandbox.workspace.suggested[(dm, first)] == asked.args["prompts"]

        second = sandbox.open_assistant_thread(ALICE)
        for thread in (first, second):
            await sandbox.post_message(ALICE, dm, "What's the weather in Paris?", thread_ts=thread)
        for thread in (first, second):
            [review] = await sandbox.wait_for(
                lambda t=thread: review_messages(sandbox, dm, t), WITHIN
            )
            assert "Paris" in text_of(review)
        async with env.bot.pool.connection() as conn:
            found = await (
                await conn.execute(
                    "SELECT DISTINCT thread_id FROM slack_reviews WHERE channel_id = %s", (dm,)
                )
            ).fetchall()
        assert {r["thread_id"] for r in found} == {
            f"slack:T0SANDBOX:{dm}:{first}",
            f"slack:T0SANDBOX:{dm}:{second}",
        }
