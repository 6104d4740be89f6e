"""The seed's three scenarios (continue, update, feedback) on the real graph and PostgreSQL.

The model is scripted, so each test knows what it proposes; everything else (graph, reducers,
checkpointer, database) is real. The order of updates in the ``updates`` stream is asserted as
the seed shows it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.types import Command

from graph import AgentService
from graph.prompts import SYSTEM_PROMPT
from graph.service import thread_config
from graph.tools.registry import build_registry
from graph.tools.weather import demo_weather
from graph.types import REVIEW_QUESTION
from tests.conftest import AgentFactory
from tests.support.graph_helpers import (
    Step,
    ai_messages,
    interrupts_of,
    messages_of,
    node_names,
    outcome,
    state_messages,
    stream_steps,
    tool_messages,
)
from tests.support.scripted_model import ScriptedModel, tool_calls

QUESTION = "what's the weather in sf?"
SEED_FEEDBACK = "User requested changes: use <city, country> format for location"


def start(text: str = QUESTION) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=text)]}


async def first_interrupt(service: AgentService, thread_id: str) -> tuple[list[Step], str]:
    steps = await stream_steps(service, start(), thread_id)
    [pending] = interrupts_of(steps)
    return steps, pending.id


async def test_continue_runs_the_proposed_call_then_answers(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    proposal = tool_calls(("weather_search", {"city": "sf"}))
    model = ScriptedModel([proposal, AIMessage(content="It's sunny in sf.")])
    async with agent_factory(model=model, registry=build_registry()) as service:
        steps = await stream_steps(service, start(), thread_id)
        assert node_names(steps) == ["call_llm", "__interrupt__"]
        [pending] = interrupts_of(steps)
        call_id = proposal.tool_calls[0]["id"]
        assert pending.value["question"] == REVIEW_QUESTION
        assert pending.value["tool_call"] == {
            "name": "weather_search",
            "args": {"city": "sf"},
            "id": call_id,
        }
        assert pending.value["tool"]["args_schema"]["required"] == ["city"]
        snapshot = await service.graph.aget_state(thread_config(thread_id))
        assert snapshot.next == ("human_review_node",)
        assert [i.id for i in snapshot.interrupts] == [pending.id]

        resumed = await stream_steps(
            service, Command(resume={pending.id: {"action": "continue"}}), thread_id
        )
        assert node_names(resumed) == ["human_review_node", "run_tool", "call_llm"]
        [result] = messages_of(resumed, "run_tool")
        assert isinstance(result, ToolMessage)
        assert result.tool_call_id == call_id
        assert result.content == demo_weather("sf")
        [final] = messages_of(resumed, "call_llm")
        assert final.content == "It's sunny in sf."

        # The model saw the system prompt, the question, its call and the tool's answer.
        assert len(model.seen) == 2
        system, human, ai, tool = model.seen[1]
        assert isinstance(system, SystemMessage)
        assert system.content == SYSTEM_PROMPT
        assert human.content == QUESTION
        assert isinstance(ai, AIMessage)
        assert ai.tool_calls[0]["id"] == call_id
        assert isinstance(tool, ToolMessage)
        assert tool.tool_call_id == call_id

        snapshot = await service.graph.aget_state(thread_config(thread_id))
        assert snapshot.next == ()
        assert snapshot.interrupts == ()
        assert snapshot.values["decisions"][call_id]["action"] == "continue"


async def test_update_keeps_message_and_call_ids_and_runs_new_args(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    proposal = tool_calls(("weather_search", {"city": "sf"}))
    model = ScriptedModel([proposal, AIMessage(content="Done.")])
    new_args = {"city": "San Francisco, USA"}
    async with agent_factory(model=model, registry=build_registry()) as service:
        _, interrupt_id = await first_interrupt(service, thread_id)
        [original] = ai_messages(await state_messages(service, thread_id))
        call_id = original.tool_calls[0]["id"]

        resumed = await stream_steps(
            service,
            Command(resume={interrupt_id: {"action": "update", "data": new_args}}),
            thread_id,
        )
        assert node_names(resumed) == ["human_review_node", "run_tool", "call_llm"]
        replaced, result = messages_of(resumed, "run_tool")
        assert isinstance(replaced, AIMessage)
        assert replaced.id == original.id
        assert [(c["id"], c["args"]) for c in replaced.tool_calls] == [(call_id, new_args)]
        assert isinstance(result, ToolMessage)
        assert result.tool_call_id == call_id
        assert result.content == demo_weather("San Francisco, USA")

        messages = await state_messages(service, thread_id)
        # Replaced in place, not appended: still exactly one proposal in the history.
        assert [type(m).__name__ for m in messages] == [
            "HumanMessage",
            "AIMessage",
            "ToolMessage",
            "AIMessage",
        ]
        assert messages[1].id == original.id
        assert isinstance(messages[1], AIMessage)
        assert messages[1].tool_calls[0]["args"] == new_args
        # The model's second call saw the edited call, not the original one.
        seen_ai = model.seen[1][2]
        assert isinstance(seen_ai, AIMessage)
        assert seen_ai.tool_calls[0]["args"] == new_args


async def test_feedback_answers_the_call_and_asks_the_model_again(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    proposal = tool_calls(("weather_search", {"city": "sf"}))
    retry = tool_calls(("weather_search", {"city": "San Francisco, USA"}))
    model = ScriptedModel([proposal, retry, AIMessage(content="Sunny in San Francisco.")])
    async with agent_factory(model=model, registry=build_registry()) as service:
        _, interrupt_id = await first_interrupt(service, thread_id)
        call_id = proposal.tool_calls[0]["id"]

        resumed = await stream_steps(
            service,
            Command(resume={interrupt_id: {"action": "feedback", "data": SEED_FEEDBACK}}),
            thread_id,
        )
        # As in the seed: no run_tool, straight back to the model, then a second interrupt.
        assert node_names(resumed) == ["human_review_node", "call_llm", "__interrupt__"]
        [feedback] = messages_of(resumed, "human_review_node")
        assert isinstance(feedback, ToolMessage)
        assert feedback.tool_call_id == call_id
        assert SEED_FEEDBACK in str(feedback.content)
        assert feedback.artifact["review_action"] == "feedback"
        assert feedback.artifact["feedback"] == SEED_FEEDBACK

        # What the model saw on its second call: its call answered by the feedback.
        assert len(model.seen) == 2
        seen = model.seen[1]
        assert isinstance(seen[-2], AIMessage)
        assert seen[-2].tool_calls[0]["id"] == call_id
        assert isinstance(seen[-1], ToolMessage)
        assert seen[-1].tool_call_id == call_id
        assert SEED_FEEDBACK in str(seen[-1].content)

        [second] = interrupts_of(resumed)
        assert second.id != interrupt_id
        assert second.value["tool_call"]["args"] == {"city": "San Francisco, USA"}
        assert second.value["tool_call"]["id"] == retry.tool_calls[0]["id"]

        done = await stream_steps(
            service, Command(resume={second.id: {"action": "continue"}}), thread_id
        )
        assert node_names(done) == ["human_review_node", "run_tool", "call_llm"]
        [result] = messages_of(done, "run_tool")
        assert isinstance(result, ToolMessage)
        assert result.content == demo_weather("San Francisco, USA")
        messages = await state_messages(service, thread_id)
        # The original call was answered once (feedback), never executed.
        assert [m.tool_call_id for m in tool_messages(messages)] == [
            call_id,
            retry.tool_calls[0]["id"],
        ]
        assert messages[-1].content == "Sunny in San Francisco."


async def test_service_reports_the_seed_flow(agent_factory: AgentFactory, thread_id: str) -> None:
    """The same flow through AgentService: who asked, pending reviews, results and the reply."""
    proposal = tool_calls(("weather_search", {"city": "sf"}))
    retry = tool_calls(("weather_search", {"city": "Paris"}))
    model = ScriptedModel([proposal, retry, AIMessage(content="Sunny in Paris.")])
    async with agent_factory(model=model, registry=build_registry()) as service:
        started = outcome(await service.start_turn(thread_id, QUESTION, user="U_ASKER"))
        [review] = started.pending
        assert await service.pending_reviews(thread_id) == started.pending
        assert review.request["requested_by"] == "U_ASKER"
        assert review.tool_call_id == proposal.tool_calls[0]["id"]
        assert started.tool_results == []

        after_feedback = outcome(
            await service.answer(
                thread_id,
                review.interrupt_id,
                {"action": "feedback", "data": "  Paris please  ", "by": "U_REVIEWER"},
            )
        )
        [declined] = after_feedback.tool_results
        assert declined.status == "declined"
        assert declined.tool_call_id == review.tool_call_id
        assert "U_REVIEWER" in declined.content
        assert "Paris please" in declined.content
        [again] = after_feedback.pending
        assert again.args == {"city": "Paris"}

        done = outcome(await service.answer(thread_id, again.interrupt_id, {"action": "continue"}))
        assert [(r.status, r.content) for r in done.tool_results] == [
            ("success", demo_weather("Paris"))
        ]
        assert done.reply == "Sunny in Paris."
        assert done.pending == []
        assert await service.pending_reviews(thread_id) == []
