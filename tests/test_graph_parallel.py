"""Several tool calls in one AI message: one review each, answered in any order, joined before
the model is asked again; plus tools that run without review ("auto")."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Command

from graph.tools.registry import ToolEntry, ToolRegistry, build_registry
from graph.types import Decision
from tests.conftest import AgentFactory
from tests.support.graph_helpers import (
    ToolLog,
    ai_messages,
    by_call_id,
    call_ids,
    messages_of,
    node_names,
    outcome,
    recording_weather,
    state_messages,
    stream_steps,
    trailing_tool_messages,
)
from tests.support.scripted_model import ScriptedModel, tool_calls

APPROVE: Decision = {"action": "continue", "by": "U_A"}
FEEDBACK: Decision = {"action": "feedback", "data": "skip Oslo, it is always raining", "by": "U_B"}


def weather_registry(log: ToolLog) -> ToolRegistry:
    return ToolRegistry([ToolEntry(recording_weather(log))])


@pytest.mark.parametrize("order", ["approve_first", "feedback_first"])
async def test_approve_one_and_feedback_other_in_either_order(
    agent_factory: AgentFactory, thread_id: str, order: str
) -> None:
    log = ToolLog()
    proposal = tool_calls(
        ("weather_search", {"city": "Paris"}), ("weather_search", {"city": "Oslo"})
    )
    paris_id, oslo_id = call_ids(proposal)
    model = ScriptedModel([proposal, AIMessage(content="Paris is sunny; Oslo skipped.")])
    async with agent_factory(model=model, registry=weather_registry(log)) as service:
        started = outcome(await service.start_turn(thread_id, "weather in Paris and Oslo?"))
        reviews = by_call_id(started.pending)
        assert set(reviews) == {paris_id, oslo_id}
        assert len({r.interrupt_id for r in started.pending}) == 2

        answers = [(paris_id, APPROVE), (oslo_id, FEEDBACK)]
        if order == "feedback_first":
            answers.reverse()
        (first_id, first), (second_id, second) = answers

        halfway = outcome(await service.answer(thread_id, reviews[first_id].interrupt_id, first))
        # Nothing runs and the model is not asked until every call of the message has an answer.
        assert [r.tool_call_id for r in halfway.pending] == [second_id]
        assert halfway.pending[0].interrupt_id == reviews[second_id].interrupt_id
        expected_first = [] if first_id == paris_id else [(oslo_id, "declined")]
        assert [(r.tool_call_id, r.status) for r in halfway.tool_results] == expected_first
        assert halfway.reply is None
        assert log.runs == []
        assert len(model.seen) == 1

        done = outcome(await service.answer(thread_id, reviews[second_id].interrupt_id, second))
        assert done.pending == []
        assert done.reply == "Paris is sunny; Oslo skipped."
        # Each result is reported once, by the answer that produced it (no replayed writes).
        expected_done = [(paris_id, "success")]
        if first_id == paris_id:
            expected_done.insert(0, (oslo_id, "declined"))
        assert [(r.tool_call_id, r.status) for r in done.tool_results] == expected_done
        assert log.runs == [("weather_search", {"city": "Paris"})]
        assert len(model.seen) == 2

        # The next model call sees one answer per call id: a result for Paris, feedback for Oslo.
        answered = {m.tool_call_id: m for m in trailing_tool_messages(model.seen[1])}
        assert set(answered) == {paris_id, oslo_id}
        assert answered[paris_id].content == "sunny in Paris"
        assert answered[paris_id].artifact is None
        assert answered[oslo_id].artifact["review_action"] == "feedback"
        assert "always raining" in str(answered[oslo_id].content)
        assert "U_B" in str(answered[oslo_id].content)
        [proposal_seen] = ai_messages(model.seen[1])
        assert call_ids(proposal_seen) == [paris_id, oslo_id]

        decisions = (
            await service.graph.aget_state({"configurable": {"thread_id": thread_id}})
        ).values["decisions"]
        assert decisions[paris_id]["action"] == "continue"
        assert decisions[paris_id]["by"] == "U_A"
        assert decisions[oslo_id]["action"] == "feedback"
        assert decisions[oslo_id]["by"] == "U_B"


async def test_feedback_on_every_sibling_runs_nothing_and_asks_the_model_once(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    proposal = tool_calls(("weather_search", {"city": "A"}), ("weather_search", {"city": "B"}))
    model = ScriptedModel([proposal, AIMessage(content="Okay, I will not look those up.")])
    async with agent_factory(model=model, registry=weather_registry(log)) as service:
        started = outcome(await service.start_turn(thread_id, "weather in A and B"))
        first, second = started.pending
        mid = outcome(
            await service.answer(
                thread_id, first.interrupt_id, {"action": "feedback", "data": "no"}
            )
        )
        assert [r.interrupt_id for r in mid.pending] == [second.interrupt_id]
        assert len(model.seen) == 1
        done = outcome(
            await service.answer(
                thread_id, second.interrupt_id, {"action": "feedback", "data": "no either"}
            )
        )
        assert done.reply == "Okay, I will not look those up."
        assert log.runs == []
        assert len(model.seen) == 2
        answered = trailing_tool_messages(model.seen[1])
        assert sorted(m.tool_call_id for m in answered) == sorted(call_ids(proposal))
        assert all(m.artifact["review_action"] == "feedback" for m in answered)


async def test_two_parallel_updates_both_survive(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    proposal = tool_calls(("weather_search", {"city": "sf"}), ("weather_search", {"city": "nyc"}))
    sf_id, nyc_id = call_ids(proposal)
    model = ScriptedModel([proposal, AIMessage(content="Done.")])
    async with agent_factory(model=model, registry=weather_registry(log)) as service:
        started = outcome(await service.start_turn(thread_id, "weather in sf and nyc"))
        [original] = ai_messages(await state_messages(service, thread_id))
        reviews = by_call_id(started.pending)
        # Answer the second call first, so the first edit is applied after the second.
        outcome(
            await service.answer(
                thread_id,
                reviews[nyc_id].interrupt_id,
                {"action": "update", "data": {"city": "New York, USA"}},
            )
        )
        assert log.runs == []
        outcome(
            await service.answer(
                thread_id,
                reviews[sf_id].interrupt_id,
                {"action": "update", "data": {"city": "San Francisco, USA"}},
            )
        )
        assert sorted(args["city"] for _, args in log.runs) == [
            "New York, USA",
            "San Francisco, USA",
        ]

        messages = await state_messages(service, thread_id)
        [edited, final] = ai_messages(messages)
        assert edited.id == original.id
        assert [(c["id"], c["args"]) for c in edited.tool_calls] == [
            (sf_id, {"city": "San Francisco, USA"}),
            (nyc_id, {"city": "New York, USA"}),
        ]
        assert final.content == "Done."
        results = {m.tool_call_id: m.content for m in trailing_tool_messages(model.seen[1])}
        assert results == {sf_id: "sunny in San Francisco, USA", nyc_id: "sunny in New York, USA"}


async def test_auto_policy_runs_without_an_interrupt(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    registry = ToolRegistry([ToolEntry(recording_weather(log), "auto")])
    proposal = tool_calls(("weather_search", {"city": "Lima"}))
    model = ScriptedModel([proposal, AIMessage(content="Sunny in Lima.")])
    async with agent_factory(model=model, registry=registry) as service:
        steps = await stream_steps(service, {"messages": [("user", "weather in Lima?")]}, thread_id)
        assert node_names(steps) == ["call_llm", "run_tool", "call_llm"]
        [result] = messages_of(steps, "run_tool")
        assert isinstance(result, ToolMessage)
        assert result.tool_call_id == proposal.tool_calls[0]["id"]
        assert log.runs == [("weather_search", {"city": "Lima"})]
        assert await service.pending_reviews(thread_id) == []


async def test_with_policies_makes_the_seed_tool_auto(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    registry = build_registry().with_policies({"weather_search": "auto"})
    assert registry.policy("weather_search") == "auto"
    assert registry.policy("post_message") == "review"
    model = ScriptedModel(
        [tool_calls(("weather_search", {"city": "sf"})), AIMessage(content="Done.")]
    )
    async with agent_factory(model=model, registry=registry) as service:
        result = outcome(await service.start_turn(thread_id, "what's the weather in sf?"))
        assert result.pending == []
        assert [r.status for r in result.tool_results] == ["success"]
        assert "sf" in result.tool_results[0].content
        assert result.reply == "Done."


@pytest.mark.parametrize("reviewed_decision", ["continue", "feedback"])
async def test_mixed_auto_and_reviewed_calls_in_one_message(
    agent_factory: AgentFactory, thread_id: str, reviewed_decision: str
) -> None:
    log = ToolLog()
    registry = ToolRegistry(
        [
            ToolEntry(recording_weather(log, "weather_search"), "auto"),
            ToolEntry(recording_weather(log, "forecast_week"), "review"),
        ]
    )
    proposal = tool_calls(("weather_search", {"city": "Rome"}), ("forecast_week", {"city": "Rome"}))
    auto_id, reviewed_id = call_ids(proposal)
    model = ScriptedModel([proposal, AIMessage(content="Here you go.")])
    async with agent_factory(model=model, registry=registry) as service:
        started = outcome(await service.start_turn(thread_id, "weather and forecast for Rome"))
        # Only the reviewed call waits; the auto call waits with it (tools run at the join).
        [review] = started.pending
        assert review.tool_call_id == reviewed_id
        assert log.runs == []

        decision: Decision = (
            {"action": "continue"}
            if reviewed_decision == "continue"
            else {"action": "feedback", "data": "not the weekly one"}
        )
        done = outcome(await service.answer(thread_id, review.interrupt_id, decision))
        assert done.pending == []
        assert done.reply == "Here you go."
        expected_runs = [("weather_search", {"city": "Rome"})]
        if reviewed_decision == "continue":
            expected_runs.append(("forecast_week", {"city": "Rome"}))
        assert sorted(log.runs, key=lambda run: run[0]) == sorted(expected_runs)
        answered = {m.tool_call_id: m for m in trailing_tool_messages(model.seen[1])}
        assert set(answered) == {auto_id, reviewed_id}
        assert answered[auto_id].content == "sunny in Rome"
        if reviewed_decision == "feedback":
            assert answered[reviewed_id].artifact["review_action"] == "feedback"
        else:
            assert answered[reviewed_id].content == "sunny in Rome"


async def test_resuming_one_of_two_interrupts_directly_keeps_the_other_pending(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    """At graph level: a resume map naming one interrupt leaves the sibling's interrupt intact."""
    log = ToolLog()
    proposal = tool_calls(("weather_search", {"city": "X"}), ("weather_search", {"city": "Y"}))
    model = ScriptedModel([proposal, AIMessage(content="Done.")])
    async with agent_factory(model=model, registry=weather_registry(log)) as service:
        steps = await stream_steps(service, {"messages": [("user", "X and Y")]}, thread_id)
        assert node_names(steps) == ["call_llm", "__interrupt__", "__interrupt__"]
        pending = await service.pending_reviews(thread_id)
        x_review = next(r for r in pending if r.args == {"city": "X"})
        y_review = next(r for r in pending if r.args == {"city": "Y"})

        resumed = await stream_steps(
            service, Command(resume={x_review.interrupt_id: {"action": "continue"}}), thread_id
        )
        assert "run_tool" not in node_names(resumed)
        assert [r.interrupt_id for r in await service.pending_reviews(thread_id)] == [
            y_review.interrupt_id
        ]
        resumed = await stream_steps(
            service, Command(resume={y_review.interrupt_id: {"action": "continue"}}), thread_id
        )
        assert node_names(resumed) == ["human_review_node", "run_tool", "call_llm"]
        assert sorted(args["city"] for _, args in log.runs) == ["X", "Y"]


async def test_two_reviewers_answering_sibling_calls_at_once_both_apply(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    proposal = tool_calls(
        ("weather_search", {"city": "Kyiv"}), ("weather_search", {"city": "Riga"})
    )
    model = ScriptedModel([proposal, AIMessage(content="Both done.")])
    async with agent_factory(model=model, registry=weather_registry(log)) as service:
        started = outcome(await service.start_turn(thread_id, "Kyiv and Riga"))
        results = await asyncio.gather(
            *(
                service.answer(thread_id, review.interrupt_id, {"action": "continue"})
                for review in started.pending
            )
        )
        outcomes = [outcome(result) for result in results]
        assert sorted(args["city"] for _, args in log.runs) == ["Kyiv", "Riga"]
        assert len(model.seen) == 2
        assert [o.reply for o in outcomes].count("Both done.") == 1
        assert await service.pending_reviews(thread_id) == []
        reported = sorted(r.tool_call_id for o in outcomes for r in o.tool_results)
        assert reported == sorted(call_ids(proposal))
