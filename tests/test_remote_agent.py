"""The bot driving graphs hosted on a real LangGraph Server (``langgraph dev``), through the
Slack sandbox over signed HTTP, with its own real PostgreSQL: ``AGENT_URL`` set, nothing of the
agent in process. The server hosts this project's graph (``agent``) and a stock LangChain v1
``create_agent`` with ``HumanInTheLoopMiddleware`` (``hitl``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from bot.audit import AuditLog
from bot.failures import AGENT_DOWN
from bot.store import BotStore, Expired
from bot.sweeper import sweep_once
from graph import Approve, Edit, Feedback, Refused
from graph.remote import RemoteAgent, RemoteSettings
from graph.remote_wire import DECISIONS, server_thread_id
from sandbox.server import Sandbox
from tests.support import odd_agents
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    review_ref,
    running_slack_env,
    text_of,
)
from tests.support.hitl_agent import HITL_TOOL
from tests.support.langgraph_dev import LangGraphDev
from tests.support.langgraph_server import RestartableServer, restartable_langgraph_dev

WITHIN = 90.0
"""Every wait: a run crosses two processes and a server on a busy 2-core machine."""


@pytest.fixture
async def env(database_url: str, langgraph_dev: LangGraphDev) -> AsyncIterator[SlackEnv]:
    remote = RemoteSettings(url=langgraph_dev.url, assistant=langgraph_dev.agent)
    async with running_slack_env(database_url, remote=remote) as slack_env:
        yield slack_env


@pytest.fixture
async def hitl_env(database_url: str, langgraph_dev: LangGraphDev) -> AsyncIterator[SlackEnv]:
    remote = RemoteSettings(url=langgraph_dev.url, assistant=langgraph_dev.hitl)
    async with running_slack_env(database_url, remote=remote) as slack_env:
        yield slack_env


def agent_of(env: SlackEnv) -> RemoteAgent:
    assert isinstance(env.bot.service, RemoteAgent)
    return env.bot.service


def message(sandbox: Sandbox, thread_ts: str, ts: str) -> dict[str, Any]:
    return next(m for m in sandbox.replies("C0GENERAL", thread_ts) if m["ts"] == ts)


def saying(sandbox: Sandbox, thread_ts: str, words: str) -> list[dict[str, Any]]:
    return [m for m in sandbox.replies("C0GENERAL", thread_ts) if words in text_of(m)]


def ref_of(review: dict[str, Any]) -> str:
    return review_ref(review)


async def start_review(
    env: SlackEnv, text: str, count: int = 1
) -> tuple[str, list[dict[str, Any]]]:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> {text}")
    reviews = await sandbox.wait_for(
        lambda: found if len(found := review_messages(sandbox, "C0GENERAL", ts)) >= count else None,
        WITHIN,
    )
    return ts, reviews


async def server_runs(env: SlackEnv, ref: str) -> list[dict[str, Any]]:
    row = await env.bot.flow.store.get(ref)
    assert row is not None
    agent = agent_of(env)
    runs = await agent.client.runs.list(server_thread_id(row.thread_id), limit=100)
    return [dict(run) for run in runs]


async def test_mention_review_approve_runs_on_the_server(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, [review] = await start_review(env, "what's the weather in sf?")
    assert "weather_search" in text_of(review)
    assert "Requested by <@U0ALICE>" in text_of(review)  # who asked, read from the server
    await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: "Approved by" in text_of(message(sandbox, thread, review["ts"])), WITHIN
    )
    [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done."), WITHIN)
    assert "light rain, 2 °C in sf" in text_of(done)
    runs = await server_runs(env, ref_of(review))
    assert len(runs) == 2  # the turn and the one resume
    [resume] = [run for run in runs if DECISIONS in (run["metadata"] or {})]
    row = await env.bot.flow.store.get(ref_of(review))
    assert row is not None
    assert resume["metadata"][DECISIONS] == {row.interrupt_id: {"action": "continue", "by": BOB}}


async def test_edit_runs_the_edited_call_on_the_server(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, [review] = await start_review(env, "what's the weather in sf?")
    await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_edit")
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(BOB), WITHIN)
    assert [b["block_id"] for b in modal["blocks"] if b["type"] == "input"] == ["arg:city"]
    done = await sandbox.submit_modal(BOB, {"arg:city": "Oslo"})
    assert done.closed, done
    await sandbox.wait_for(
        lambda: "Edited and approved by" in text_of(message(sandbox, thread, review["ts"])),
        WITHIN,
    )
    [result] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done."), WITHIN)
    assert "in Oslo" in text_of(result) and "in sf" not in text_of(result)


async def test_feedback_reaches_the_model_and_a_new_review_arrives(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, [review] = await start_review(env, "what's the weather in sf?")
    await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_feedback")
    await sandbox.wait_for(lambda: sandbox.open_modal(BOB), WITHIN)
    sent = await sandbox.submit_modal(BOB, {"feedback": 'use "San Francisco, USA"'})
    assert sent.closed
    await sandbox.wait_for(
        lambda: "Feedback from <@U0BOB>" in text_of(message(sandbox, thread, review["ts"])),
        WITHIN,
    )
    [second] = await sandbox.wait_for(
        lambda: [
            m for m in review_messages(sandbox, "C0GENERAL", thread) if m["ts"] != review["ts"]
        ],
        WITHIN,
    )
    assert "San Francisco, USA" in text_of(second)
    assert not saying(sandbox, thread, "light rain")  # the call itself never ran


async def test_twenty_simultaneous_clicks_make_one_run(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, [review] = await start_review(env, "what's the weather in Oslo?")
    clicks = [
        sandbox.click_button(user, "C0GENERAL", review["ts"], "review_approve")
        for user in [ALICE, BOB] * 10
    ]
    responses = await asyncio.gather(*clicks)
    assert all(response.status == 200 for response in responses)
    await sandbox.wait_for(lambda: saying(sandbox, thread, "Done."), WITHIN)
    await sandbox.settle(10)
    assert len(saying(sandbox, thread, "Done.")) == 1
    assert len(await server_runs(env, ref_of(review))) == 2


async def test_a_stale_click_is_told_who_decided(env: SlackEnv) -> None:
    sandbox = env.sandbox
    thread, [review] = await start_review(env, "what's the weather in Lima?")
    await asyncio.gather(
        sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve"),
        sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve"),
    )
    note = await sandbox.wait_for(
        lambda: sandbox.ephemerals(BOB) or sandbox.ephemerals(ALICE), WITHIN
    )
    assert "already approved by <@U0" in note[0]["text"]
    await sandbox.wait_for(lambda: saying(sandbox, thread, "Done."), WITHIN)
    assert len(await server_runs(env, ref_of(review))) == 2


async def test_an_answer_the_server_already_has_is_refused_with_who_decided(
    env: SlackEnv,
) -> None:
    """Past the bot's own claim (another bot, a script, a restored backup): the server's
    record of the run says who decided, and nothing runs again."""
    thread, [review] = await start_review(env, "what's the weather in Lima?")
    await env.sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
    await env.sandbox.wait_for(lambda: saying(env.sandbox, thread, "Done."), WITHIN)
    row = await env.bot.flow.store.get(ref_of(review))
    assert row is not None
    again = await agent_of(env).answer(row.thread_id, row.interrupt_id, Approve(ALICE))
    assert isinstance(again, Refused) and again.reason == "not_pending"
    assert again.previous is not None and again.previous.decided_by == BOB
    assert len(await server_runs(env, ref_of(review))) == 2


async def _age_claim(store: BotStore, ref: str) -> None:
    async with store.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET decided_at = now() - interval '1 hour', "
            "heartbeat_at = now() - interval '10 minutes' WHERE ref = %s",
            (ref,),
        )


async def test_a_claim_whose_process_died_before_the_resume_is_finished_once(
    env: SlackEnv,
) -> None:
    """The bot claimed the decision in its database, then died before it reached the server:
    the sweeper (of any replica) resumes it, once."""
    sandbox, store = env.sandbox, env.bot.flow.store
    thread, [review] = await start_review(env, "what's the weather in Quito?")
    ref = ref_of(review)
    assert await store.claim(ref, Approve(BOB)) is not None
    await _age_claim(store, ref)
    assert (await sweep_once(env.bot.flow, stuck_after=60)).recovered == 1
    await sandbox.wait_for(lambda: saying(sandbox, thread, "Done."), WITHIN)
    row = await store.get(ref)
    assert row is not None and row.status == "decided"
    assert len(await server_runs(env, ref)) == 2
    assert (await sweep_once(env.bot.flow, stuck_after=60)).recovered == 0


async def test_a_resume_the_server_took_before_the_bot_died_is_reported_not_rerun(
    env: SlackEnv,
) -> None:
    """The bot claimed the decision and the server ran it, then the bot died before it could
    finish the review or post the result: recovery reads the run back from the server (who
    decided, what followed) and never resumes again."""
    sandbox, store = env.sandbox, env.bot.flow.store
    thread, [review] = await start_review(env, "what's the weather in Cairo?")
    ref = ref_of(review)
    assert await store.claim(ref, Approve(BOB)) is not None
    row = await store.get(ref)
    assert row is not None
    applied = await agent_of(env).answer(row.thread_id, row.interrupt_id, Approve(BOB))
    assert not isinstance(applied, Refused), applied  # the dead process's resume went through
    await _age_claim(store, ref)
    assert (await sweep_once(env.bot.flow, stuck_after=60)).recovered == 1
    [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done."), WITHIN)
    assert "in Cairo" in text_of(done)
    row = await store.get(ref)
    assert row is not None and row.status == "decided" and row.decided_by == BOB
    assert len(await server_runs(env, ref)) == 2


async def test_two_action_requests_of_the_middleware_are_answered_together(
    hitl_env: SlackEnv,
) -> None:
    env, sandbox = hitl_env, hitl_env.sandbox
    thread, reviews = await start_review(env, "what's the weather in sf and nyc?", count=2)
    first, second = sorted(reviews, key=lambda m: m["ts"])
    assert "sf" in text_of(first) and "nyc" in text_of(second)
    agent = agent_of(env)
    row = await env.bot.flow.store.get(ref_of(first))
    assert row is not None

    await sandbox.click_button(BOB, "C0GENERAL", first["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: "Approved by" in text_of(message(sandbox, thread, first["ts"])), WITHIN
    )
    await sandbox.settle(5)
    assert not saying(sandbox, thread, "Done:")  # nothing runs before both are answered
    assert len(await agent.pending_reviews(row.thread_id)) == 2  # still one interrupt on it

    await sandbox.click_button(BOB, "C0GENERAL", second["ts"], "review_feedback")
    await sandbox.wait_for(lambda: sandbox.open_modal(BOB), WITHIN)
    assert (await sandbox.submit_modal(BOB, {"feedback": "not nyc"})).closed
    [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done:"), WITHIN)
    assert "light rain, 2 °C in sf" in text_of(done)
    assert "rejected" in text_of(done) and "not nyc" in text_of(done)
    runs = await server_runs(env, ref_of(first))
    assert len(runs) == 2  # the turn, and one resume carrying both answers
    assert await agent.pending_reviews(row.thread_id) == []


async def test_the_server_down_is_said_and_the_decision_given_back_then_applied(
    database_url: str,
) -> None:
    with restartable_langgraph_dev() as server:
        remote = RemoteSettings(url=server.url, assistant="agent")
        async with running_slack_env(database_url, remote=remote) as env:
            sandbox = env.sandbox
            ready_url = env.bot_url.replace("/slack/events", "/readyz")
            thread, [review] = await start_review(env, "what's the weather in Bern?")
            await asyncio.to_thread(server.stop)

            await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
            [note] = await sandbox.wait_for(lambda: sandbox.ephemerals(BOB), WITHIN)
            assert note["text"] == AGENT_DOWN
            await sandbox.wait_for(
                lambda: review_messages(sandbox, "C0GENERAL", thread), WITHIN
            )  # the buttons are back
            row = await env.bot.flow.store.get(ref_of(review))
            assert row is not None and row.status == "pending"
            other = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> weather in Oslo?")
            await sandbox.wait_for(lambda: saying(sandbox, other, AGENT_DOWN), WITHIN)
            async with httpx.AsyncClient(trust_env=False) as http:
                down = await http.get(ready_url)
                assert down.status_code == 503 and "agent_server" in down.json()

                await asyncio.to_thread(server.start)
                assert (await http.get(ready_url)).status_code == 200
            await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
            [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done."), WITHIN)
            assert "in Bern" in text_of(done)


@pytest.fixture(scope="module")
def odd_server() -> Iterator[RestartableServer]:
    with restartable_langgraph_dev(odd_agents.GRAPHS) as server:
        yield server


async def test_an_interrupt_of_unknown_shape_is_shown_as_json_and_answered_in_words(
    database_url: str, odd_server: RestartableServer
) -> None:
    remote = RemoteSettings(url=odd_server.url, assistant="free_form")
    async with running_slack_env(database_url, remote=remote) as env:
        sandbox = env.sandbox
        thread, [review] = await start_review(env, "hello")
        shown = text_of(review).replace("&quot;", '"')
        assert '"please": "pick a colour"' in shown and '"blue"' in shown
        buttons = [e["action_id"] for e in review["blocks"][-1]["elements"]]
        assert buttons == ["review_feedback"]
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_feedback")
        await sandbox.wait_for(lambda: sandbox.open_modal(BOB), WITHIN)
        assert (await sandbox.submit_modal(BOB, {"feedback": "blue, please"})).closed
        await sandbox.wait_for(lambda: saying(sandbox, thread, "You said: blue, please"), WITHIN)


async def test_only_the_decisions_the_middleware_allows_are_offered(
    database_url: str, odd_server: RestartableServer
) -> None:
    remote = RemoteSettings(url=odd_server.url, assistant="approve_only")
    async with running_slack_env(database_url, remote=remote) as env:
        sandbox = env.sandbox
        thread, [review] = await start_review(env, "what's the weather in sf?")
        buttons = [e["action_id"] for e in review["blocks"][-1]["elements"]]
        assert buttons == ["review_approve", "review_feedback"]  # no Edit: not allowed
        row = await env.bot.flow.store.get(ref_of(review))
        assert row is not None
        refused = await agent_of(env).answer(
            row.thread_id, row.interrupt_id, Edit({"city": "Oslo"}, BOB)
        )
        assert isinstance(refused, Refused) and refused.reason == "invalid_decision"
        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
        [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done:"), WITHIN)
        assert "light rain, 2 °C in sf" in text_of(done)


async def test_an_approve_only_interrupt_expires_once_and_is_left_unanswered(
    database_url: str, odd_server: RestartableServer
) -> None:
    """Nothing but running the call answers it, so the expiry answers nothing: the review is
    expired in the bot once (card, audit, the thread told) and never retried."""
    remote = RemoteSettings(url=odd_server.url, assistant="approve_alone")
    async with running_slack_env(database_url, remote=remote) as env:
        sandbox, store = env.sandbox, env.bot.flow.store
        thread, [review] = await start_review(env, "what's the weather in Lima?")
        ref = ref_of(review)
        async with store.pool.connection() as conn:
            await conn.execute(
                "UPDATE slack_reviews SET expires_at = now() - interval '1 second' WHERE ref = %s",
                (ref,),
            )
        assert (await sweep_once(env.bot.flow, stuck_after=60)).expired == 1
        await sandbox.wait_for(
            lambda: "Expired" in text_of(message(sandbox, thread, review["ts"])), WITHIN
        )
        [told] = await sandbox.wait_for(lambda: saying(sandbox, thread, "did not run"), WITHIN)
        assert "only approving" in text_of(told)
        row = await store.get(ref)
        assert row is not None and row.status == "decided" and row.action == "expired"
        assert (await sweep_once(env.bot.flow, stuck_after=60)).expired == 0
        await sandbox.settle(2)
        assert len(saying(sandbox, thread, "did not run")) == 1
        assert not saying(sandbox, thread, "light rain")
        assert not [r for r in await server_runs(env, ref) if DECISIONS in (r["metadata"] or {})]
        assert await agent_of(env).pending_reviews(row.thread_id)  # left waiting on the server
        rows = await AuditLog(store.pool).query(tool=HITL_TOOL)
        mine = [r["outcome"] for r in rows if r["thread_id"].endswith(thread)]
        assert mine == ["requested", "expired"]


async def test_a_run_still_going_when_the_bot_died_is_joined_not_restarted(
    database_url: str, odd_server: RestartableServer
) -> None:
    """The bot claimed, the server started the run, the bot died while it waited: recovery
    finds the run by the decision in its metadata, waits for it and reports it, once."""
    remote = RemoteSettings(url=odd_server.url, assistant="slow")
    async with running_slack_env(database_url, remote=remote) as env:
        sandbox, store, agent = env.sandbox, env.bot.flow.store, agent_of(env)
        thread, [review] = await start_review(env, "hello")
        ref = ref_of(review)
        row = await store.claim(ref, Feedback("blue", BOB))
        assert row is not None and not isinstance(row, Expired)
        decision = row.decision
        assert decision is not None
        dying = asyncio.create_task(agent.answer(row.thread_id, row.interrupt_id, decision))
        sid = server_thread_id(row.thread_id)

        async def busy() -> bool:
            return (await agent.client.threads.get(sid))["status"] == "busy"

        while not await busy():
            assert not dying.done(), dying
            await asyncio.sleep(0.05)
        dying.cancel()  # the process is gone; its run is not
        await _age_claim(store, ref)
        assert (await sweep_once(env.bot.flow, stuck_after=60)).recovered == 1
        [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Worked on: blue"), WITHIN)
        assert done
        finished = await store.get(ref)
        assert finished is not None and finished.status == "decided"
        assert len(await server_runs(env, ref)) == 2
        await sandbox.settle(5)
        assert len(saying(sandbox, thread, "Worked on: blue")) == 1


async def test_both_action_requests_answered_at_once_resume_once(hitl_env: SlackEnv) -> None:
    env, sandbox = hitl_env, hitl_env.sandbox
    thread, reviews = await start_review(env, "what's the weather in Rome and Oslo?", count=2)
    first, second = sorted(reviews, key=lambda m: m["ts"])
    await asyncio.gather(
        sandbox.click_button(BOB, "C0GENERAL", first["ts"], "review_approve"),
        sandbox.click_button(CAROL, "C0GENERAL", second["ts"], "review_approve"),
    )
    [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done:"), WITHIN)
    assert "in Rome" in text_of(done) and "in Oslo" in text_of(done)
    await sandbox.settle(5)
    assert len(saying(sandbox, thread, "Done:")) == 1
    assert len(await server_runs(env, ref_of(first))) == 2
    for review in (first, second):
        row = await env.bot.flow.store.get(ref_of(review))
        assert row is not None and row.status == "decided"


async def test_the_remote_benchmark_runs() -> None:
    from bench.remote import measure

    results = await measure(2, warmup=1)
    assert len(results.ours) == len(results.bare) == 2
    assert len(results.clicks) == 2
    assert "click->applied" in "\n".join(results.lines())


async def test_an_answer_given_back_but_applied_with_its_sibling_is_recorded_as_applied(
    hitl_env: SlackEnv,
) -> None:
    """Bob's answer to the first call reached the server's store, then the bot gave it back
    (the server broke off before it could say so). Carol's answer to the second call completes
    the set and the run applies Bob's. A later click on the first review runs nothing and
    records what ran: Bob's approval."""
    env, sandbox = hitl_env, hitl_env.sandbox
    thread, reviews = await start_review(env, "what's the weather in Lima and Bern?", count=2)
    first, second = sorted(reviews, key=lambda m: m["ts"])
    agent = agent_of(env)
    row = await env.bot.flow.store.get(ref_of(first))
    assert row is not None
    [kept] = [a for a in await agent_asks(agent, row.thread_id) if a.address == row.interrupt_id]
    assert await agent._answers(row.thread_id, kept, Approve(BOB)) is None  # the kept answer

    await sandbox.click_button(CAROL, "C0GENERAL", second["ts"], "review_approve")
    [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done:"), WITHIN)
    assert "in Lima" in text_of(done) and "in Bern" in text_of(done)

    await sandbox.click_button(ALICE, "C0GENERAL", first["ts"], "review_feedback")
    await sandbox.wait_for(lambda: sandbox.open_modal(ALICE), WITHIN)
    await sandbox.submit_modal(ALICE, {"feedback": "not Lima"})

    async def settled() -> Any:
        found = await env.bot.flow.store.get(ref_of(first))
        return found if found is not None and found.status == "decided" else None

    for _ in range(int(WITHIN * 10)):
        if (finished := await settled()) is not None:
            break
        await asyncio.sleep(0.1)
    assert finished is not None
    assert (finished.action, finished.decided_by) == ("continue", BOB)
    assert len(await server_runs(env, ref_of(first))) == 2


async def agent_asks(agent: RemoteAgent, thread_id: str) -> list[Any]:
    thread = await agent._thread(thread_id)
    assert thread is not None
    return agent._asks(thread_id, thread)


REMOTE_POLICY = """\
[defaults]
four_eyes = true

[tools.weather_search]
quorum = 2
redact = ["city"]
"""


async def test_policy_four_eyes_quorum_and_redaction_hold_for_a_remote_graph(
    database_url: str, langgraph_dev: LangGraphDev, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(REMOTE_POLICY)
    remote = RemoteSettings(url=langgraph_dev.url, assistant=langgraph_dev.hitl)
    async with running_slack_env(database_url, remote=remote, policy_file=policy) as env:
        sandbox = env.sandbox
        thread, [review] = await start_review(env, "what's the weather in Zurich?")
        assert "Zurich" not in text_of(review) and "[redacted]" in text_of(review)

        await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
        [refusal] = await sandbox.wait_for(lambda: sandbox.ephemerals(ALICE), WITHIN)
        assert "four-eyes" in refusal["text"]  # Alice asked: the server's thread says so

        await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
        await sandbox.wait_for(
            lambda: "1 of 2 approvals" in text_of(message(sandbox, thread, review["ts"])), WITHIN
        )
        assert not saying(sandbox, thread, "Done:")
        await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_approve")
        [done] = await sandbox.wait_for(lambda: saying(sandbox, thread, "Done:"), WITHIN)
        assert "Zurich" not in text_of(done) and "[redacted]" in text_of(done)
        assert not any("Zurich" in text_of(m) for m in sandbox.replies("C0GENERAL", thread)[1:])


async def test_an_expired_remote_review_runs_nothing(env: SlackEnv) -> None:
    sandbox, store = env.sandbox, env.bot.flow.store
    thread, [review] = await start_review(env, "what's the weather in Accra?")
    ref = ref_of(review)
    async with store.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_reviews SET expires_at = now() - interval '1 second' WHERE ref = %s",
            (ref,),
        )
    assert (await sweep_once(env.bot.flow, stuck_after=60)).expired == 1
    await sandbox.wait_for(
        lambda: "Expired" in text_of(message(sandbox, thread, review["ts"])), WITHIN
    )
    await sandbox.settle(5)
    assert not saying(sandbox, thread, "light rain")
    [resume] = [r for r in await server_runs(env, ref) if DECISIONS in (r["metadata"] or {})]
    assert list(resume["metadata"][DECISIONS].values()) == [{"action": "expired"}]


async def test_retention_deletes_idle_server_threads_and_keeps_waiting_ones(env: SlackEnv) -> None:
    sandbox, agent = env.sandbox, agent_of(env)
    done_thread, [done] = await start_review(env, "what's the weather in Kyiv?")
    await sandbox.click_button(BOB, "C0GENERAL", done["ts"], "review_approve")
    await sandbox.wait_for(lambda: saying(sandbox, done_thread, "Done."), WITHIN)
    _, [waiting] = await start_review(env, "what's the weather in Riga?")
    finished = await env.bot.flow.store.get(ref_of(done))
    pending = await env.bot.flow.store.get(ref_of(waiting))
    assert finished is not None and pending is not None
    ids = [finished.thread_id, pending.thread_id]

    activity = await agent.last_activity(ids)
    assert set(activity) == set(ids)
    last = activity[finished.thread_id]
    assert activity[pending.thread_id] > last  # waiting for a person counts as activity now
    assert await agent.delete_threads(ids, idle_before=last) == []  # active since the cut
    gone = await agent.delete_threads(ids, idle_before=last + timedelta(milliseconds=1))
    assert gone == [finished.thread_id]
    assert await agent.last_activity(ids) == {pending.thread_id: ANY}
    assert await agent.pending_reviews(pending.thread_id)  # the waiting one is untouched
