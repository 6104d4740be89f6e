"""What a process that died mid-way leaves behind is finished by the sweeper (a mention whose
review was registered but never shown, or shown but never stored as shown; a decision whose
applier went silent), and what a live process is still doing is left to it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langchain_core.messages import AIMessage
from psycopg.types.json import Jsonb

from bot.sweeper import sweep_once
from graph.decisions import Approve
from sandbox.server import Sandbox
from tests.support.bot_harness import (
    ALICE,
    BOT,
    SlackEnv,
    review_messages,
    review_ref,
    running_slack_env,
    text_of,
)
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls


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
        await _handled(env, mention["event_id"])
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


# -- a review is shown once, even when its poster died before storing the message ------------


async def _rewind_to_the_kill(env: SlackEnv, thread: str) -> None:
    """The moment a process was killed after chat.postMessage and before it stored the ts:
    the review is registered but not known as shown, and the mention claimed, unfinished."""
    [mention] = [
        d.body
        for d in env.sandbox.workspace.deliveries
        if d.body.get("event", {}).get("type") == "app_mention" and d.body["event"]["ts"] == thread
    ]
    await _handled(env, mention["event_id"])
    async with env.bot.service.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET message_ts = NULL WHERE thread_ts = %s",
            (thread,),
        )
        await conn.execute(
            "UPDATE slack_events SET status = 'handling', body = %s, "
            "claimed_at = now() - interval '1 hour' WHERE event_id = %s",
            (Jsonb(mention), mention["event_id"]),
        )


async def _handled(env: SlackEnv, event_id: str, within: float = 10.0) -> None:
    """Until the first handler marked the event done (it posts the review first)."""
    deadline = time.monotonic() + within
    while True:
        async with env.bot.service.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT status FROM slack_events WHERE event_id = %s", (event_id,)
                )
            ).fetchone()
        if row is not None and row["status"] == "done":
            return
        assert time.monotonic() < deadline, f"event {event_id} still being handled"
        await asyncio.sleep(0.05)


def _says(sandbox: Sandbox, thread: str, words: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.replies("C0GENERAL", thread) if words in text_of(m)]


async def test_a_review_shown_before_a_crash_is_found_again_not_posted_twice(
    database_url: str,
) -> None:
    async with running_slack_env(database_url) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Quito?")
        [shown] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        await _rewind_to_the_kill(env, thread)

        assert (await sweep_once(env.bot.flow, stuck_after=60)).reanswered == 1
        assert [m["ts"] for m in review_messages(sandbox, "C0GENERAL", thread)] == [shown["ts"]]
        await sandbox.click_button(ALICE, "C0GENERAL", shown["ts"], "review_approve")
        await sandbox.wait_for(lambda: _says(sandbox, thread, "Done."))
        assert not [e for e in sandbox.ephemerals(ALICE) if "belong" in e["text"]]
        assert not review_messages(sandbox, "C0GENERAL", thread)


async def test_a_click_on_any_copy_of_a_review_decides_it_and_paints_every_copy(
    database_url: str,
) -> None:
    async with running_slack_env(database_url) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Lima?")
        [first] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        await _rewind_to_the_kill(env, thread)
        # Slack cannot say what the thread holds (beyond the SDK's retries): better a second
        # copy than a review nobody sees.
        sandbox.web_api.fail_next("conversations.replies", 500, 500, 500)
        await sweep_once(env.bot.flow, stuck_after=60)
        first_copy, second_copy = review_messages(sandbox, "C0GENERAL", thread)
        assert first_copy["ts"] == first["ts"]

        await sandbox.click_button(ALICE, "C0GENERAL", first["ts"], "review_approve")
        await sandbox.wait_for(lambda: _says(sandbox, thread, "Done."))
        assert not [e for e in sandbox.ephemerals(ALICE) if "belong" in e["text"]]
        decided = [m for m in sandbox.replies("C0GENERAL", thread) if "Approved by" in text_of(m)]
        assert sorted(m["ts"] for m in decided) == sorted([first["ts"], second_copy["ts"]])
        assert len(_says(sandbox, thread, "Done.")) == 1


async def test_a_review_carried_into_another_channel_is_refused(database_url: str) -> None:
    async with running_slack_env(database_url) as env:
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Cusco?")
        [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        random = sandbox.workspace.channel("C0RANDOM")
        elsewhere = sandbox.workspace.post(random, BOT, "Approval needed", blocks=review["blocks"])

        await sandbox.click_button(ALICE, "C0RANDOM", elsewhere.ts, "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE))
        assert "doesn't belong" in refusal["text"]
        assert review_messages(sandbox, "C0GENERAL", thread)  # still pending, untouched
        assert not _says(sandbox, thread, "Done.")


# -- the sweeper never takes over live work ------------------------------------------------------

STUCK_AFTER = 2.0  # what "no sign of life" means in these tests
HEARTBEAT = 0.2  # a tenth of it: a busy machine still beats in time


class HeldModel(ScriptedModel):
    """A scripted model whose ``held``-th call waits until released: a live but slow call
    (a Claude call with its retries can outlast the recovery time)."""

    def __init__(self, replies: list[Any], held: int) -> None:
        super().__init__(replies)
        self.held = held
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def ainvoke(self, input: Any, config: Any = None) -> AIMessage:
        if len(self.seen) + 1 == self.held:
            self.waiting.set()
            await asyncio.wait_for(self.release.wait(), 60)
        return await super().ainvoke(input, config)


async def _sweep_while_held(env: SlackEnv, model: HeldModel) -> None:
    """Once the held call has lasted longer than the recovery time, sweep (in the background:
    a sweeper that took the work over would wait for the live run's thread), then let the
    model answer and wait for both."""
    await asyncio.wait_for(model.waiting.wait(), 30)
    await asyncio.sleep(STUCK_AFTER * 1.5)  # a lower bound: the claim is older than that
    sweep = asyncio.create_task(sweep_once(env.bot.flow, stuck_after=STUCK_AFTER))
    await asyncio.sleep(0.2)
    model.release.set()
    await asyncio.wait_for(sweep, 60)
    await env.sandbox.settle(5)


async def test_a_slow_decision_is_not_replayed_while_its_process_lives(database_url: str) -> None:
    RUNS.clear()
    model = HeldModel(
        [tool_calls(("record_note", {"note": "slow"})), AIMessage(content="noted slowly")],
        held=2,  # the model's answer after the tool ran
    )
    async with running_slack_env(database_url, model=model, registry=registry_with()) as env:
        env.bot.flow.store.heartbeat_seconds = HEARTBEAT
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note it")
        [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        await _sweep_while_held(env, model)

        await sandbox.wait_for(lambda: _says(sandbox, thread, "noted slowly"), 30)
        await sandbox.settle(5)
        assert len(_says(sandbox, thread, "noted slowly")) == 1
        assert len(_says(sandbox, thread, "recorded: slow")) == 1
        assert RUNS == ["slow"]


async def test_a_slow_turn_is_not_answered_again_while_its_process_lives(
    database_url: str,
) -> None:
    model = HeldModel([AIMessage(content="thought it over")], held=1)
    async with running_slack_env(database_url, model=model) as env:
        env.bot.flow.store.heartbeat_seconds = HEARTBEAT
        sandbox = env.sandbox
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> think hard")
        await _sweep_while_held(env, model)

        await sandbox.wait_for(lambda: _says(sandbox, thread, "thought it over"), 30)
        await sandbox.settle(5)
        assert len(_says(sandbox, thread, "thought it over")) == 1
        assert len(model.seen) == 1


async def test_a_decision_whose_process_went_silent_is_taken_over(database_url: str) -> None:
    RUNS.clear()
    model = ScriptedModel(
        [tool_calls(("record_note", {"note": "orphan"})), AIMessage(content="noted orphan")]
    )
    async with running_slack_env(database_url, model=model, registry=registry_with()) as env:
        sandbox, store = env.sandbox, env.bot.flow.store
        thread = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> note it")
        [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", thread))
        ref = review_ref(review)
        # A process claimed the decision an hour ago and is still beating: it is alive.
        assert await store.claim(ref, Approve(ALICE)) is not None
        await _age_claim(env, ref, heartbeat="0 seconds")
        assert ref not in [r.ref for r in await store.take_over(60)]
        # Then it died: no sign of life for ten minutes. Any sweeper finishes its work.
        await _age_claim(env, ref, heartbeat="10 minutes")
        assert (await sweep_once(env.bot.flow, stuck_after=60)).recovered >= 1
        await sandbox.wait_for(lambda: _says(sandbox, thread, "noted orphan"))
        assert RUNS == ["orphan"]
        assert (finished := await store.get(ref)) is not None and finished.status == "decided"


async def _age_claim(env: SlackEnv, ref: str, *, heartbeat: str) -> None:
    async with env.bot.service.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET decided_at = now() - interval '1 hour', "
            "heartbeat_at = now() - %s::interval WHERE ref = %s",
            (heartbeat, ref),
        )
