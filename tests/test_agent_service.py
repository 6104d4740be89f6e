"""The agent service's reading verbs and housekeeping (``graph.service``), and the lease's
renewal (``graph.locks``): what a caller that died mid-turn reads back (``recap``,
``has_message``), previews, the last activity and deletion of idle threads, and how a tool's
result is reported. Real PostgreSQL and the real graph; the model is scripted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from pydantic import BaseModel

from graph import AgentContext, AgentService, RunOutcome
from graph.db import Pool
from graph.locks import ThreadLeases
from graph.nodes import AUTO_RULE, RAN_WITH
from graph.previews import Preview
from graph.service import message_text, tool_result
from graph.tools.registry import ToolEntry, ToolRegistry
from tests.conftest import AgentFactory
from tests.support.graph_helpers import ToolLog, outcome, recording_booking, recording_weather
from tests.support.scripted_model import ScriptedModel

# -- what a tool's result and the model's text are reported as (pure) ------------------------


def test_a_result_in_content_blocks_is_reported_as_its_text_blocks() -> None:
    blocks: list[Any] = [
        {"type": "text", "text": "first"},
        {"type": "image", "data": "..."},
        {"type": "text", "text": "second"},
        {"type": "text", "text": 3},
    ]
    message = ToolMessage(content=blocks, tool_call_id="c1", name="tickets__create")
    result = tool_result(message)
    assert result.content == "first\nsecond"
    assert result.tool_call_id == "c1" and result.tool_name == "tickets__create"
    assert result.status == "success"
    no_text = ToolMessage(content=[{"type": "image", "data": "..."}], tool_call_id="c2")
    assert tool_result(no_text).content == no_text.text
    assert tool_result(no_text).tool_name == ""
    assert tool_result(ToolMessage(content="plain", tool_call_id="c3")).content == "plain"
    words = ToolMessage(content=["plain words"], tool_call_id="c4")  # no text block: its text
    assert tool_result(words).content == "plain words"


def test_a_result_says_what_ran_which_rule_let_it_and_its_receipt() -> None:
    ran = ToolMessage(
        content="booked",
        tool_call_id="c1",
        name="book_hotel",
        artifact={"receipt": {"summary": "Booked 2 nights"}},
        additional_kwargs={RAN_WITH: {"city": "Rome"}, AUTO_RULE: "policy file p"},
    )
    result = tool_result(ran)
    assert result.args == {"city": "Rome"}
    assert result.auto_rule == "policy file p"
    assert result.receipt is not None and result.receipt["summary"] == "Booked 2 nights"
    declined = ToolMessage(
        content="declined: not now",
        tool_call_id="c2",
        name="book_hotel",
        artifact={"review_action": "feedback", "receipt": {"summary": "Booked"}},
        additional_kwargs={RAN_WITH: "not a mapping", AUTO_RULE: "policy file p"},
    )
    result = tool_result(declined)
    assert result.status == "declined"
    assert result.args == {} and result.auto_rule is None and result.receipt is None
    failed = ToolMessage(content="Error: boom", tool_call_id="c3", status="error")
    assert tool_result(failed).status == "error"
    assert tool_result(failed).receipt is not None
    assert tool_result(failed).receipt["failed"] is True  # type: ignore[index]
    odd = ToolMessage(content="x", tool_call_id="c4", additional_kwargs={AUTO_RULE: 7})
    assert tool_result(odd).auto_rule is None


def test_the_models_text_is_its_text_blocks_only() -> None:
    assert message_text(AIMessage(content="  hello ")) == "hello"
    blocks: list[Any] = [
        " lead ",
        {"type": "text", "text": "said"},
        {"type": "tool_use", "id": "c1", "name": "t", "input": {}, "text": "hidden"},
        {"type": "text"},
        {"type": "text", "text": "done "},
    ]
    assert message_text(AIMessage(content=blocks)) == "lead \nsaid\ndone"


# -- reading a thread back -------------------------------------------------------------------


def said(text: str, *calls: tuple[str, dict[str, Any], str]) -> AIMessage:
    return AIMessage(
        content=text,
        tool_calls=[
            {"name": name, "args": args, "id": call_id, "type": "tool_call"}
            for name, args, call_id in calls
        ],
    )


async def two_turns(service: AgentService, thread_id: str) -> list[RunOutcome]:
    """Two turns, each proposing a call (with words before it) that is approved."""
    done = []
    for turn in ("1", "2"):
        started = outcome(
            await service.start_turn(thread_id, f"turn {turn}", user="U1", message_id=f"m{turn}")
        )
        [review] = started.pending
        done.append(
            outcome(await service.answer(thread_id, review.interrupt_id, {"action": "continue"}))
        )
    return done


def two_turn_model() -> ScriptedModel:
    return ScriptedModel(
        [
            said("Looking up sf.", ("weather_search", {"city": "sf"}, "call-1")),
            said("Sunny in sf."),
            said("Looking up ny.", ("weather_search", {"city": "ny"}, "call-2")),
            said("Sunny in ny."),
        ]
    )


def weather_registry(log: ToolLog) -> ToolRegistry:
    return ToolRegistry([ToolEntry(recording_weather(log))])


async def test_recap_reads_back_what_followed_a_call_or_a_message(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    async with agent_factory(model=two_turn_model(), registry=weather_registry(log)) as service:
        first, second = await two_turns(service, thread_id)
        assert [r.content for r in first.tool_results] == ["sunny in sf"]
        assert [r.content for r in second.tool_results] == ["sunny in ny"]

        after_call = await service.recap(thread_id, "call-2")
        assert after_call.thread_id == thread_id
        assert [r.content for r in after_call.tool_results] == ["sunny in ny"]
        assert after_call.reply == "Sunny in ny." and after_call.pending == []

        after_message = await service.recap(thread_id, after_message="m2")
        assert [r.content for r in after_message.tool_results] == ["sunny in ny"]
        assert after_message.reply == "Sunny in ny."  # the last words, not "Looking up ny."

        whole = await service.recap(thread_id, after_message="m1")
        assert [r.content for r in whole.tool_results] == ["sunny in sf", "sunny in ny"]

        unknown = await service.recap(thread_id, "no-such-call")
        assert unknown == RunOutcome(thread_id=thread_id, tool_results=[], pending=[], reply=None)
        empty = await service.recap(f"{thread_id}-none", "call-1")
        assert empty.tool_results == [] and empty.reply is None and empty.pending == []


async def test_recap_names_the_reviews_still_waiting(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    async with agent_factory(model=two_turn_model(), registry=weather_registry(log)) as service:
        started = outcome(await service.start_turn(thread_id, "turn 1", user="U1", message_id="m1"))
        [review] = started.pending
        waiting = await service.recap(thread_id, after_message="m1")
        assert [p.interrupt_id for p in waiting.pending] == [review.interrupt_id]
        assert [p.thread_id for p in waiting.pending] == [thread_id]
        busy = await service.start_turn(thread_id, "and now?", user="U1")
        assert not isinstance(busy, RunOutcome) and busy.reason == "reviews_pending"
        assert busy.message == "1 review(s) in this thread need a decision first."
        assert [(p.thread_id, p.interrupt_id) for p in busy.pending] == [
            (thread_id, review.interrupt_id)
        ]
        assert waiting.tool_results == [] and waiting.reply == "Looking up sf."


async def test_has_message_says_whether_a_message_got_into_the_thread(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    async with agent_factory(model=two_turn_model(), registry=weather_registry(log)) as service:
        assert not await service.has_message(thread_id, "m1")  # no thread yet
        await service.start_turn(thread_id, "turn 1", user="U1", message_id="m1")
        assert await service.has_message(thread_id, "m1")
        assert not await service.has_message(thread_id, "m2")


async def test_a_refusal_names_the_thread_and_the_argument_at_fault(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    """``check`` on a thread that does not exist says which; an edit carrying a NUL character
    is refused before the thread is held, naming the argument (the modal marks that field)."""
    log = ToolLog()
    async with agent_factory(model=two_turn_model(), registry=weather_registry(log)) as service:
        missing = await service.check(f"{thread_id}-none", "i1", {"action": "continue"})
        assert missing is not None and missing.reason == "unknown_thread"
        assert missing.message == f"There is no conversation '{thread_id}-none'."
        started = outcome(await service.start_turn(thread_id, "turn 1", user="U1"))
        [review] = started.pending
        nul = {"action": "update", "data": {"city": "s\x00f"}}
        refused = await service.answer(thread_id, review.interrupt_id, nul)
        assert not isinstance(refused, RunOutcome)
        assert refused.reason == "invalid_decision" and refused.argument == "city"
        assert log.runs == []
        outcome(await service.answer(thread_id, review.interrupt_id, {"action": "continue"}))
        again = await service.answer(thread_id, review.interrupt_id, {"action": "continue"})
        assert not isinstance(again, RunOutcome) and again.reason == "not_pending"
        assert again.message == "This review is no longer waiting for a decision."
        assert again.previous is not None and again.previous.action == "continue"


class Place(BaseModel):
    city: str


@tool(args_schema=Place)  # what a reviewer edits; the runtime is injected
def weather_for(city: str, runtime: ToolRuntime[AgentContext, Any]) -> str:
    """The weather, for whoever asked (the run's context)."""
    return f"sunny in {city} for {runtime.context.requester}"


async def test_an_answer_runs_the_tools_with_the_callers_context(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    model = ScriptedModel([said("", ("weather_for", {"city": "sf"}, "call-1")), said("Done.")])
    async with agent_factory(model=model, registry=ToolRegistry([ToolEntry(weather_for)])) as svc:
        [review] = outcome(await svc.start_turn(thread_id, "weather?", user="U1")).pending
        done = outcome(
            await svc.answer(
                thread_id,
                review.interrupt_id,
                {"action": "continue"},
                context=AgentContext(requester="U9"),
            )
        )
        assert [r.content for r in done.tool_results] == ["sunny in sf for U9"]
        assert done.thread_id == thread_id


async def test_a_turn_runs_auto_approved_tools_with_the_callers_context(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    model = ScriptedModel([said("", ("weather_for", {"city": "sf"}, "call-1")), said("Done.")])
    registry = ToolRegistry([ToolEntry(weather_for, policy="auto", rule="test")])
    async with agent_factory(model=model, registry=registry) as service:
        context = AgentContext(requester="U9")
        done = outcome(await service.start_turn(thread_id, "weather?", user="U1", context=context))
        assert [r.content for r in done.tool_results] == ["sunny in sf for U9"]
        assert done.thread_id == thread_id and done.reply == "Done."


async def test_the_reply_is_the_models_words_after_the_tools_not_an_edited_proposal(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    """An edit rewrites the proposing message (with its words) in the review step; that is
    not the model replying, so a run whose model says nothing afterwards has no reply."""
    log = ToolLog()
    model = ScriptedModel(
        [said("Looking up sf.", ("weather_search", {"city": "sf"}, "c1")), said("")]
    )
    async with agent_factory(model=model, registry=weather_registry(log)) as service:
        [review] = outcome(await service.start_turn(thread_id, "weather?", user="U1")).pending
        edit = {"action": "update", "data": {"city": "la"}}
        done = outcome(await service.answer(thread_id, review.interrupt_id, edit))
        assert [r.content for r in done.tool_results] == ["sunny in la"]
        assert done.reply is None


# -- previews ----------------------------------------------------------------------------------


async def test_a_preview_sees_the_checked_arguments_or_says_the_tool_would_refuse(
    agent_factory: AgentFactory, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[dict[str, Any], AgentContext]] = []

    async def preview(args: dict[str, Any], context: AgentContext) -> Preview:
        seen.append((args, context))
        return Preview(summary=f"Would book {args['nights']} nights in {args['city']}")

    log = ToolLog()
    registry = ToolRegistry(
        [ToolEntry(recording_booking(log), preview=preview), ToolEntry(recording_weather(log))]
    )
    async with agent_factory(registry=registry) as service:
        context = AgentContext(requester="U1")
        shown = await service.preview("book_hotel", {"city": "Rome", "nights": 2}, context=context)
        assert shown == Preview(summary="Would book 2 nights in Rome")
        assert seen == [({"city": "Rome", "nights": 2}, context)]
        await service.preview("book_hotel", {"city": "Rome", "nights": 2})
        assert seen[-1][1] == AgentContext()

        refused = await service.preview("book_hotel", {"city": "Rome", "nights": 2, "<b>": 1})
        assert refused == Preview(
            summary=":warning: The tool would refuse these arguments: "
            "&lt;b&gt;: unknown field for book_hotel",
            ok=False,
        )
        assert len(seen) == 2  # the tool's preview never saw what the tool would refuse
        with caplog.at_level(logging.INFO, logger="graph.previews"):
            assert await service.preview("weather_search", {"city": "sf"}) is None
            assert await service.preview("no_such_tool", {}) is None
        assert caplog.records == []  # a tool without a preview is not a failed preview
        assert log.runs == []


# -- housekeeping ------------------------------------------------------------------------------


async def test_idle_threads_are_deleted_and_busy_or_recent_ones_kept(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    model = ScriptedModel([said("Hello."), said("Hello again."), said("Hi.")])
    async with agent_factory(model=model, registry=ToolRegistry([])) as service:
        busy, idle, recent = f"{thread_id}-busy", f"{thread_id}-idle", f"{thread_id}-recent"
        for thread in (busy, idle, recent):
            outcome(await service.start_turn(thread, "hello", user="U1"))
        activity = await service.last_activity([busy, idle, f"{thread_id}-none"])
        assert sorted(activity) == [busy, idle]
        assert all(isinstance(at, datetime) for at in activity.values())

        later = datetime.now(UTC) + timedelta(minutes=1)
        assert await service.delete_threads([recent], idle_before=later - timedelta(hours=1)) == []
        other_replica = ThreadLeases(service.pool)
        loop = asyncio.get_running_loop()
        async with other_replica.hold(busy):  # someone is using it
            began = loop.time()
            gone = await service.delete_threads([busy, idle], idle_before=later)
            waited = loop.time() - began
        assert gone == [idle]
        # The pass waits briefly (1 s) for a busy thread, not a run's 120 s: 30 s is the bound
        # for a loaded machine.
        assert waited < 30, waited
        assert sorted(await service.last_activity([busy, idle, recent])) == [busy, recent]


async def test_a_held_lease_is_renewed_so_it_never_expires_while_its_run_goes_on(
    offline_agent: AgentService, thread_id: str
) -> None:
    """A 3 s lease, renewed every second, held for 7 s: at every look the database says it
    is still valid, and it was renewed several times. (A lease renewed too seldom, or not at
    all, has expired by then; the margin, 2 s, is what a renewal may be late on a busy
    machine.)"""
    leases = dataclasses.replace(offline_agent.leases, ttl_seconds=3.0)
    expiries: set[datetime] = set()
    loop = asyncio.get_running_loop()
    async with leases.hold(thread_id):
        end = loop.time() + 7.0
        while loop.time() < end:
            async with offline_agent.pool.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT expires_at, expires_at > now() AS valid "
                        "FROM agent_thread_leases WHERE thread_id = %s",
                        (thread_id,),
                    )
                ).fetchone()
            assert row is not None and row["valid"], "the lease expired while held"
            expiries.add(row["expires_at"])
            await asyncio.sleep(0.2)
    assert len(expiries) >= 4, expiries  # the first and at least three renewals


async def test_a_renewal_that_fails_is_logged_and_the_run_goes_on(
    offline_agent: AgentService, thread_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def connection(self) -> Any:
            raise RuntimeError("database gone")

    leases = ThreadLeases(offline_agent.pool, ttl_seconds=0.3)
    task = asyncio.create_task(
        dataclasses.replace(leases, pool=cast(Pool, Broken()))._renew(thread_id, "h")
    )
    with caplog.at_level(logging.WARNING, logger="graph.locks"):
        for _ in range(200):  # bounded: the first two renewals come within 0.1 s
            if len(caplog.records) >= 2:
                break
            await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(caplog.records) >= 2, "a failed renewal stopped the renewals"
    assert caplog.records[0].getMessage() == f"could not renew the lease on thread {thread_id}"
    exc_info = caplog.records[0].exc_info  # the error itself is in the log
    assert isinstance(exc_info, tuple) and exc_info[0] is RuntimeError
