"""What the service refuses, and that a refusal runs nothing and leaves the review pending.

Every test counts real tool executions with a recording tool, so "nothing ran" is observed,
not assumed. Also: a tool that raises becomes an error tool message and the run goes on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.types import Command

from graph import AgentService, PendingReview
from graph.nodes import requester_of, requesters_of
from graph.review import MAX_DECISION_BYTES
from graph.service import thread_config
from graph.tools.registry import ToolEntry, ToolRegistry
from tests.conftest import AgentFactory
from tests.support.graph_helpers import (
    ToolLog,
    call_ids,
    checkpoint_rows,
    exploding_tool,
    node_names,
    outcome,
    recording_booking,
    recording_weather,
    refusal,
    stream_steps,
    trailing_tool_messages,
)
from tests.support.scripted_model import ScriptedModel, tool_calls


def registry_for(log: ToolLog) -> ToolRegistry:
    return ToolRegistry(
        [
            ToolEntry(recording_weather(log)),
            ToolEntry(recording_booking(log)),
            ToolEntry(exploding_tool(log)),
        ]
    )


async def one_review(service: AgentService, thread_id: str, text: str = "go") -> PendingReview:
    started = outcome(await service.start_turn(thread_id, text))
    [review] = started.pending
    return review


async def assert_still_pending(
    service: AgentService, thread_id: str, review: PendingReview
) -> None:
    assert [r.interrupt_id for r in await service.pending_reviews(thread_id)] == [
        review.interrupt_id
    ]


async def test_answering_a_decided_review_is_refused_naming_who_decided(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel(
        [tool_calls(("weather_search", {"city": "sf"})), AIMessage(content="Done.")]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id)
        outcome(
            await service.answer(
                thread_id, review.interrupt_id, {"action": "continue", "by": "U_ALICE"}
            )
        )
        assert log.runs == [("weather_search", {"city": "sf"})]

        for late in (
            {"action": "continue", "by": "U_BOB"},
            {"action": "feedback", "data": "wait", "by": "U_BOB"},
            {"action": "update", "data": {"city": "LA"}, "by": "U_BOB"},
        ):
            refused = refusal(await service.answer(thread_id, review.interrupt_id, late))
            assert refused.reason == "not_pending"
            assert refused.previous is not None
            assert refused.previous.decided_by == "U_ALICE"
            assert refused.previous.action == "continue"
            assert refused.previous.interrupt_id == review.interrupt_id
            checked = await service.check(thread_id, review.interrupt_id, late)
            assert checked is not None
            assert checked.reason == "not_pending"
        assert log.runs == [("weather_search", {"city": "sf"})]
        assert len(model.seen) == 2


async def test_an_interrupt_id_never_issued_is_not_pending(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel([tool_calls(("weather_search", {"city": "sf"}))])
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id)
        refused = refusal(await service.answer(thread_id, "0" * 32, {"action": "continue"}))
        assert refused.reason == "not_pending"
        assert refused.previous is None
        assert log.runs == []
        await assert_still_pending(service, thread_id, review)


async def test_unknown_thread_is_refused_and_no_checkpoint_is_created(
    agent_factory: AgentFactory, database_url: str, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel([])  # any model call fails the test
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        for decision in ({"action": "continue"}, {"action": "update", "data": {"city": "x"}}):
            refused = refusal(await service.answer(thread_id, "f" * 32, decision))
            assert refused.reason == "unknown_thread"
            assert thread_id in refused.message
            checked = await service.check(thread_id, "f" * 32, decision)
            assert checked is not None
            assert checked.reason == "unknown_thread"
        assert await service.pending_reviews(thread_id) == []
        snapshot = await service.graph.aget_state(thread_config(thread_id))
        assert snapshot.created_at is None
        assert model.seen == []
        assert log.runs == []
    assert await checkpoint_rows(database_url, thread_id) == 0


BAD_DECISIONS: list[tuple[str, Any, str]] = [
    ("not an object", "continue", "object"),
    ("unknown action", {"action": "approve"}, "unknown action"),
    ("no action", {"data": {"city": "x"}}, "unknown action"),
    ("update without data", {"action": "update"}, "'update' needs 'data'"),
    ("update data a string", {"action": "update", "data": "LA"}, "must be an object"),
    ("update data a list", {"action": "update", "data": [{"city": "LA"}]}, "must be an object"),
    ("feedback missing", {"action": "feedback"}, "'feedback' needs 'data'"),
    ("feedback empty", {"action": "feedback", "data": "   "}, "'feedback' needs 'data'"),
    ("feedback not text", {"action": "feedback", "data": {"x": 1}}, "'feedback' needs 'data'"),
    (
        "feedback over 100 KB",
        {"action": "feedback", "data": "x" * (MAX_DECISION_BYTES + 1)},
        "at most 100 KB",
    ),
    (
        "update over 100 KB",
        {"action": "update", "data": {"city": "y" * (MAX_DECISION_BYTES + 1)}},
        "at most 100 KB",
    ),
]


@pytest.mark.parametrize(
    ("decision", "words"),
    [pytest.param(d, w, id=name) for name, d, w in BAD_DECISIONS],
)
async def test_bad_decisions_are_refused_and_the_review_stays_pending(
    agent_factory: AgentFactory, thread_id: str, decision: Any, words: str
) -> None:
    log = ToolLog()
    model = ScriptedModel(
        [tool_calls(("weather_search", {"city": "sf"})), AIMessage(content="Done.")]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id)
        checked = await service.check(thread_id, review.interrupt_id, decision)
        assert checked is not None
        assert checked.reason == "invalid_decision"
        refused = refusal(await service.answer(thread_id, review.interrupt_id, decision))
        assert refused.reason == "invalid_decision"
        assert words in refused.message
        assert log.runs == []
        assert len(model.seen) == 1
        await assert_still_pending(service, thread_id, review)

        # The review still works afterwards.
        done = outcome(await service.answer(thread_id, review.interrupt_id, {"action": "continue"}))
        assert done.reply == "Done."
        assert log.runs == [("weather_search", {"city": "sf"})]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param({"city": "Rome", "nights": "many"}, "nights", id="wrong type"),
        pytest.param({"city": "Rome"}, "nights", id="missing required"),
        pytest.param({"city": "Rome", "nights": 2, "pets": 1}, "pets", id="unknown field"),
        pytest.param({"city": ["Rome"], "nights": 2}, "city", id="list for string"),
    ],
)
async def test_invalid_update_args_are_refused_naming_the_field(
    agent_factory: AgentFactory, thread_id: str, args: dict[str, Any], field: str
) -> None:
    log = ToolLog()
    model = ScriptedModel([tool_calls(("book_hotel", {"city": "Rome", "nights": 3}))])
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id, "book Rome")
        decision = {"action": "update", "data": args}
        checked = await service.check(thread_id, review.interrupt_id, decision)
        assert checked is not None
        assert (checked.reason, checked.argument) == ("invalid_decision", field)
        refused = refusal(await service.answer(thread_id, review.interrupt_id, decision))
        assert refused.reason == "invalid_decision"
        assert refused.argument == field
        assert field in refused.message
        assert log.runs == []
        assert len(model.seen) == 1
        await assert_still_pending(service, thread_id, review)


async def test_valid_update_passes_check_and_runs_with_the_new_args(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel(
        [tool_calls(("book_hotel", {"city": "Rome", "nights": 3})), AIMessage(content="Booked.")]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id, "book Rome")
        decision = {"action": "update", "data": {"city": "Milan", "nights": 2}}
        assert await service.check(thread_id, review.interrupt_id, decision) is None
        await assert_still_pending(service, thread_id, review)  # check() runs nothing
        assert log.runs == []
        done = outcome(await service.answer(thread_id, review.interrupt_id, decision))
        assert log.runs == [("book_hotel", {"city": "Milan", "nights": 2})]
        assert done.tool_results[0].content == "booked 2 nights in Milan"


async def test_start_turn_while_a_review_is_pending_is_refused(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel(
        [tool_calls(("weather_search", {"city": "sf"}), ("weather_search", {"city": "la"}))]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        started = outcome(await service.start_turn(thread_id, "sf and la"))
        refused = refusal(await service.start_turn(thread_id, "and also Rome?", user="U2"))
        assert refused.reason == "reviews_pending"
        assert "2 review(s)" in refused.message
        assert {r.interrupt_id for r in refused.pending} == {
            r.interrupt_id for r in started.pending
        }
        assert len(model.seen) == 1
        assert log.runs == []
        snapshot = await service.graph.aget_state(thread_config(thread_id))
        assert "and also Rome?" not in [m.content for m in snapshot.values["messages"]]


async def test_graph_fails_closed_on_a_bad_resume_that_bypassed_the_service(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    """Resuming the graph directly with an invalid edit runs nothing, tells the model nothing,
    and asks the same review again with the error in it; a valid answer to that applies."""
    log = ToolLog()
    model = ScriptedModel(
        [tool_calls(("book_hotel", {"city": "Rome", "nights": 3})), AIMessage(content="Booked.")]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id, "book Rome")
        steps = await stream_steps(
            service,
            Command(
                resume={
                    review.interrupt_id: {
                        "action": "update",
                        "data": {"city": "Rome", "nights": "lots"},
                    }
                }
            ),
            thread_id,
        )
        assert node_names(steps) == ["__interrupt__"]
        [again] = await service.pending_reviews(thread_id)
        assert again.interrupt_id != review.interrupt_id
        assert again.tool_call_id == review.tool_call_id
        assert "nights" in again.request["error"]
        assert again.request["error_argument"] == "nights"
        assert log.runs == [] and len(model.seen) == 1

        done = outcome(
            await service.answer(
                thread_id,
                again.interrupt_id,
                {"action": "update", "data": {"city": "Rome", "nights": 2}},
            )
        )
        assert log.runs == [("book_hotel", {"city": "Rome", "nights": 2})]
        assert done.reply == "Booked."
        assert not any(
            isinstance(m, ToolMessage) and "could not be applied" in str(m.content)
            for m in model.seen[-1]
        )


async def test_a_failing_tool_becomes_an_error_message_and_the_run_continues(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    proposal = tool_calls(("explode", {"target": "db"}), ("weather_search", {"city": "sf"}))
    explode_id, weather_id = call_ids(proposal)
    model = ScriptedModel([proposal, AIMessage(content="The explode tool failed; sf is sunny.")])
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        started = outcome(await service.start_turn(thread_id, "explode db, weather sf"))
        for review in started.pending:
            result = await service.answer(thread_id, review.interrupt_id, {"action": "continue"})
        done = outcome(result)
        statuses = {r.tool_call_id: (r.status, r.content) for r in done.tool_results}
        assert statuses[weather_id] == ("success", "sunny in sf")
        status, content = statuses[explode_id]
        assert status == "error"
        assert "ValueError" in content
        assert "boom at db" in content
        assert done.reply == "The explode tool failed; sf is sunny."
        assert done.pending == []
        assert sorted(name for name, _ in log.runs) == ["explode", "weather_search"]
        answered = {m.tool_call_id: m for m in trailing_tool_messages(model.seen[1])}
        assert answered[explode_id].status == "error"
        assert answered[weather_id].status == "success"


async def test_concurrent_answers_in_one_process_run_the_tool_once(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel(
        [tool_calls(("weather_search", {"city": "sf"})), AIMessage(content="Done.")]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id)
        results = await asyncio.gather(
            *(
                service.answer(
                    thread_id, review.interrupt_id, {"action": "continue", "by": f"U{n}"}
                )
                for n in range(10)
            )
        )
        ran = [r for r in results if not hasattr(r, "reason")]
        refused = [refusal(r) for r in results if hasattr(r, "reason")]
        assert len(ran) == 1
        assert len(refused) == 9
        assert {r.reason for r in refused} == {"not_pending"}
        winner = outcome(ran[0])
        assert [r.status for r in winner.tool_results] == ["success"]
        deciders = {r.previous.decided_by for r in refused if r.previous is not None}
        assert len(deciders) == 1
        assert log.runs == [("weather_search", {"city": "sf"})]
        assert len(model.seen) == 2


async def test_an_interrupt_of_another_thread_is_not_pending_here(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    other_thread = f"{thread_id}-other"
    model = ScriptedModel(
        [
            tool_calls(("weather_search", {"city": "a"})),
            tool_calls(("weather_search", {"city": "b"})),
        ]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        mine = await one_review(service, thread_id)
        theirs = await one_review(service, other_thread)
        refused = refusal(
            await service.answer(thread_id, theirs.interrupt_id, {"action": "continue"})
        )
        assert refused.reason == "not_pending"
        assert log.runs == []
        await assert_still_pending(service, thread_id, mine)
        await assert_still_pending(service, other_thread, theirs)


async def test_a_call_to_a_tool_that_does_not_exist_is_reviewed_then_reported(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel(
        [tool_calls(("rm_rf", {"path": "/"})), AIMessage(content="I cannot do that.")]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id)
        assert review.tool_name == "rm_rf"
        assert review.request["tool"]["description"] == "(unknown tool)"
        done = outcome(await service.answer(thread_id, review.interrupt_id, {"action": "continue"}))
        [result] = done.tool_results
        assert result.status == "error"
        assert "rm_rf" in result.content
        assert done.reply == "I cannot do that."
        assert log.runs == []


async def test_a_model_failure_after_approval_never_runs_the_tool_twice(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()

    def model_down(messages: list[Any]) -> AIMessage:
        raise RuntimeError("model unavailable")

    model = ScriptedModel(
        [
            tool_calls(("weather_search", {"city": "sf"})),
            model_down,
            AIMessage(content="Back again: sf is sunny."),
        ]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id)
        with pytest.raises(RuntimeError, match="model unavailable"):
            await service.answer(thread_id, review.interrupt_id, {"action": "continue", "by": "U1"})
        assert log.runs == [("weather_search", {"city": "sf"})]

        # A second click is refused (the decision was taken), not run again.
        again = refusal(
            await service.answer(thread_id, review.interrupt_id, {"action": "continue"})
        )
        assert again.reason == "not_pending"
        assert again.previous is not None
        assert again.previous.decided_by == "U1"
        assert log.runs == [("weather_search", {"city": "sf"})]

        # The thread is not stuck: a new message continues it with a valid history.
        recovered = outcome(await service.start_turn(thread_id, "try again"))
        assert recovered.reply == "Back again: sf is sunny."
        assert [type(m).__name__ for m in model.seen[-1]] == [
            "SystemMessage",
            "HumanMessage",
            "AIMessage",
            "ToolMessage",
            "HumanMessage",
        ]
        assert log.runs == [("weather_search", {"city": "sf"})]


def json_schema_tool(log: ToolLog) -> BaseTool:
    """A tool described by a plain JSON schema instead of a pydantic model."""

    def page(**kwargs: Any) -> str:
        log.runs.append(("page", dict(kwargs)))
        return f"paged {kwargs['who']}"

    return StructuredTool.from_function(
        page,
        name="page",
        description="Page someone.",
        args_schema={
            "type": "object",
            "properties": {"who": {"type": "string"}, "urgent": {"type": "boolean"}},
            "required": ["who"],
        },
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param({"urgent": True}, "who", id="missing required"),
        pytest.param({"who": "bob", "pets": 1}, "pets", id="unknown field"),
    ],
)
async def test_json_schema_tool_edits_are_checked_for_fields(
    agent_factory: AgentFactory, thread_id: str, args: dict[str, Any], field: str
) -> None:
    log = ToolLog()
    registry = ToolRegistry([ToolEntry(json_schema_tool(log))])
    model = ScriptedModel([tool_calls(("page", {"who": "alice"})), AIMessage(content="Paged.")])
    async with agent_factory(model=model, registry=registry) as service:
        review = await one_review(service, thread_id, "page alice")
        refused = refusal(
            await service.answer(thread_id, review.interrupt_id, {"action": "update", "data": args})
        )
        assert (refused.reason, refused.argument) == ("invalid_decision", field)
        assert field in refused.message
        assert log.runs == []
        await assert_still_pending(service, thread_id, review)
        done = outcome(
            await service.answer(
                thread_id,
                review.interrupt_id,
                {"action": "update", "data": {"who": "bob", "urgent": True}},
            )
        )
        assert log.runs == [("page", {"who": "bob", "urgent": True})]
        assert done.tool_results[0].content == "paged bob"


@pytest.mark.parametrize("blank", ["   ", "", "\t\n "])
async def test_a_blank_required_text_is_an_invalid_edit(
    agent_factory: AgentFactory, thread_id: str, blank: str
) -> None:
    """Regression: ``{"city": "   "}`` was accepted as an edit and the tool ran with it."""
    log = ToolLog()
    model = ScriptedModel([tool_calls(("weather_search", {"city": "sf"})), AIMessage("Done.")])
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id)
        blank_edit = {"action": "update", "data": {"city": blank}}
        for refused in (
            await service.check(thread_id, review.interrupt_id, blank_edit),
            refusal(await service.answer(thread_id, review.interrupt_id, blank_edit)),
        ):
            assert refused is not None and refused.reason == "invalid_decision"
            assert refused.argument == "city" and "blank" in refused.message
        await assert_still_pending(service, thread_id, review)
        assert log.runs == []
        outcome(
            await service.answer(
                thread_id, review.interrupt_id, {"action": "update", "data": {"city": " Rome "}}
            )
        )
        assert log.runs == [("weather_search", {"city": " Rome "})]  # text is never trimmed


async def test_a_proposal_with_a_nul_character_is_refused_to_the_model(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    """Regression: a NUL in proposed arguments could not be stored with its review and wedged
    the thread. Now no review is asked, the model reads why, and the thread goes on."""
    log = ToolLog()
    model = ScriptedModel(
        [
            tool_calls(("book_hotel", {"city": "Ro\x00me", "nights": 3})),
            AIMessage(content="That city name had a stray character."),
            tool_calls(("weather_search", {"city": "Rome"})),
            AIMessage(content="Sunny."),
        ]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        first = outcome(await service.start_turn(thread_id, "book Rome"))
        assert first.pending == [] and first.reply == "That city name had a stray character."
        [error] = trailing_tool_messages(model.seen[1])
        assert error.status == "error" and "`city` contains a NUL character" in str(error.content)
        assert [r.status for r in first.tool_results] == ["error"]
        assert log.runs == []

        second = outcome(await service.start_turn(thread_id, "weather in Rome?"))
        [review] = second.pending
        outcome(await service.answer(thread_id, review.interrupt_id, {"action": "continue"}))
        assert log.runs == [("weather_search", {"city": "Rome"})]


async def test_edits_and_feedback_with_a_nul_character_are_invalid(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel([tool_calls(("weather_search", {"city": "sf"})), AIMessage("Done.")])
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        review = await one_review(service, thread_id)
        edit = {"action": "update", "data": {"city": "s\x00f"}}
        checked = await service.check(thread_id, review.interrupt_id, edit)
        assert checked is not None and checked.argument == "city"
        assert "NUL character" in checked.message
        feedback = {"action": "feedback", "data": "no\x00pe"}
        assert refusal(await service.answer(thread_id, review.interrupt_id, feedback)).reason == (
            "invalid_decision"
        )
        await assert_still_pending(service, thread_id, review)
        assert log.runs == []


async def test_the_requester_is_who_started_the_turn_and_everyone_before_counts(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel(
        [
            AIMessage(content="Which city?"),
            tool_calls(("weather_search", {"city": "Rome"})),
        ]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        asked = outcome(await service.start_turn(thread_id, "weather please", user="U_ALICE"))
        assert asked.reply == "Which city?"
        answered = outcome(await service.start_turn(thread_id, "Rome", user="U_MALLORY"))
        [review] = answered.pending
        assert review.request["requested_by"] == "U_MALLORY"
        assert review.request["requesters"] == ["U_ALICE", "U_MALLORY"]


def test_the_requester_is_the_first_author_of_the_turn_not_the_latest() -> None:
    alice, mallory, bob = (HumanMessage(t, name=n) for t, n in (("a", "A"), ("m", "M"), ("b", "B")))
    # Two messages in one input (a hosted-graph client may send that): the turn is A's.
    assert requester_of([alice, mallory]) == "A"
    assert requesters_of([alice, mallory]) == ["A", "M"]
    # After the model's reply ends A's turn, B's message starts the next one.
    conversation = [alice, AIMessage("Which?"), bob, mallory]
    assert requester_of(conversation) == "B"
    assert requesters_of(conversation) == ["A", "B", "M"]
    # A proposal in between (answered by a reviewer) does not end the turn.
    proposal = tool_calls(("weather_search", {"city": "sf"}))
    assert requester_of([alice, proposal, mallory]) == "A"
    assert requester_of([AIMessage("hi")]) is None


async def test_an_auto_call_with_a_nul_character_is_refused_too(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    """What runs unreviewed is still stored and audited, where NUL cannot go: refused alike,
    while a sibling auto call runs."""
    log = ToolLog()
    proposal = tool_calls(
        ("weather_search", {"city": "s\x00f"}), ("weather_search", {"city": "la"})
    )
    model = ScriptedModel([proposal, AIMessage(content="Only la.")])
    registry = registry_for(log).with_policies({"weather_search": "auto"}, "test")
    async with agent_factory(model=model, registry=registry) as service:
        done = outcome(await service.start_turn(thread_id, "weather in sf and la"))
        assert done.pending == [] and done.reply == "Only la."
        assert log.runs == [("weather_search", {"city": "la"})]
        answers = {m.tool_call_id: m for m in trailing_tool_messages(model.seen[1])}
        nul_id, la_id = call_ids(proposal)
        assert answers[nul_id].status == "error" and "NUL" in str(answers[nul_id].content)
        assert answers[la_id].status == "success"
