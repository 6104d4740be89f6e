"""An approval is bound to the exact arguments it approved (``graph.digest``): the tool runs only
if the arguments about to run have the approval's digest. Checked by the service before
anything runs, by the review node where the decision is applied, and by ``run_tool`` just
before the tool is invoked. The seed's wire, without a digest, stays valid.

Every test counts real tool executions (a recording tool), so "nothing ran" is observed.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from graph import Approve, Edit
from graph.decisions import from_stored, from_wire, to_wire
from graph.digest import JCS_TAG, PYTHON_TAG, args_digest, short
from graph.nodes import AgentNodes
from graph.review import ArgsChanged, InvalidDecision, check_bound
from graph.state import AgentState
from graph.tools.registry import ToolEntry, ToolRegistry
from graph.types import DecisionRecord
from tests.conftest import AgentFactory
from tests.support.graph_helpers import (
    ToolLog,
    outcome,
    recording_booking,
    recording_weather,
    refusal,
    stream_steps,
)
from tests.support.scripted_model import ScriptedModel, tool_calls

# -- the digest itself ---------------------------------------------------------------------


def test_the_digest_is_rfc_8785_over_the_arguments() -> None:
    digest = args_digest({"b": 1, "a": "é"})
    assert digest.startswith(JCS_TAG) and len(digest) == len(JCS_TAG) + 64
    assert digest == args_digest({"a": "é", "b": 1})  # key order is not significant
    assert digest == args_digest({"a": "é", "b": 1.0})  # one JSON number
    assert digest != args_digest({"a": "é", "b": "1"})
    # no Unicode normalisation: composed and decomposed é are different arguments
    assert args_digest({"a": "\u00e9"}) != args_digest({"a": "e\u0301"})
    # the RFC's own canonical form of this object, hashed
    canonical = '{"a":"€","b":[1,2.5e-7,true,null]}'.encode()
    expected = "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert args_digest({"b": [1, 2.5e-7, True, None], "a": "\u20ac"}) == expected


def test_what_rfc_8785_cannot_hold_exactly_is_digested_under_another_tag() -> None:
    big = args_digest({"n": 2**60})
    assert big.startswith(PYTHON_TAG)
    assert big != args_digest({"n": 2**60 + 1})  # never collapsed to a double
    assert big != args_digest({"n": str(2**60)})
    assert args_digest({"s": "\ud800"}).startswith(PYTHON_TAG)
    assert short(big).startswith("sha256-py:") and len(short(big)) == len("sha256-py:") + 12


# -- the wire --------------------------------------------------------------------------------


def test_the_wire_carries_the_digest_and_stays_valid_without_one() -> None:
    bound = Approve("U1", "sha256:" + "a" * 64)
    assert to_wire(bound) == {"action": "continue", "by": "U1", "digest": "sha256:" + "a" * 64}
    assert from_wire(to_wire(bound)) == bound
    edit = Edit({"city": "LA"}, "U1", "sha256:" + "b" * 64)
    assert from_wire(to_wire(edit)) == edit
    assert to_wire(Approve("U1")) == {"action": "continue", "by": "U1"}  # the seed's words
    assert from_wire({"action": "continue"}) == Approve()
    assert from_stored("continue", "U1", None, None, "sha256:x") == Approve("U1", "sha256:x")


# -- check_bound: what the graph runs is what was approved ------------------------------------


def decided(action: str, digest: str | None, **record: Any) -> DecisionRecord:
    fields = {
        "tool_call_id": "c1",
        "action": action,
        "args": record.get("args"),
        "feedback": record.get("feedback"),
        "by": "U1",
        **({"digest": digest} if digest != "absent" else {}),
    }
    return cast(DecisionRecord, fields)


def test_a_decision_runs_only_the_arguments_its_digest_names() -> None:
    """Approve and Edit are bound to their digest: other arguments raise ``ArgsChanged``, which
    names both digests; Feedback runs nothing, so its digest binds nothing; a decision with no
    digest (absent, None or empty: the seed's wire) is unbound."""
    sf, la = {"city": "sf"}, {"city": "la"}
    for action in ("continue", "update"):
        check_bound(decided(action, args_digest(sf)), sf)
        with pytest.raises(ArgsChanged) as changed:
            check_bound(decided(action, args_digest(sf)), la)
        assert changed.value.approved == args_digest(sf)
        assert changed.value.running == args_digest(la)
        assert isinstance(changed.value, InvalidDecision) and changed.value.field is None
        assert str(changed.value) == (
            f"the arguments changed since they were approved ({short(args_digest(sf))} approved, "
            f"{short(args_digest(la))} would run); nothing ran, please review again"
        )
    check_bound(decided("feedback", args_digest(sf), feedback="no"), la)
    for unbound in ("absent", None, ""):
        check_bound(decided("continue", unbound), la)


# -- the service and the graph --------------------------------------------------------------


def registry_for(log: ToolLog) -> ToolRegistry:
    return ToolRegistry([ToolEntry(recording_weather(log)), ToolEntry(recording_booking(log))])


def weather_model() -> ScriptedModel:
    return ScriptedModel(
        [tool_calls(("weather_search", {"city": "sf"})), AIMessage(content="Done.")]
    )


async def test_an_approval_bound_to_the_arguments_runs_them(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    async with agent_factory(model=weather_model(), registry=registry_for(log)) as service:
        [review] = outcome(await service.start_turn(thread_id, "go")).pending
        digest = args_digest(review.args)
        ran = outcome(await service.answer(thread_id, review.interrupt_id, Approve("U1", digest)))
        assert log.runs == [("weather_search", {"city": "sf"})]
        assert ran.tool_results[0].status == "success"
        state = await service.graph.aget_state({"configurable": {"thread_id": thread_id}})
        assert state.values["decisions"][review.tool_call_id]["digest"] == digest


async def test_the_seed_wire_without_a_digest_still_runs(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    async with agent_factory(model=weather_model(), registry=registry_for(log)) as service:
        [review] = outcome(await service.start_turn(thread_id, "go")).pending
        outcome(await service.answer(thread_id, review.interrupt_id, {"action": "continue"}))
        assert log.runs == [("weather_search", {"city": "sf"})]


async def test_an_approval_of_other_arguments_is_refused_and_nothing_runs(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    async with agent_factory(model=weather_model(), registry=registry_for(log)) as service:
        [review] = outcome(await service.start_turn(thread_id, "go")).pending
        stale = Approve("U1", args_digest({"city": "la"}))  # what someone approved elsewhere

        checked = await service.check(thread_id, review.interrupt_id, stale)
        assert checked is not None and checked.reason == "args_changed"
        refused = refusal(await service.answer(thread_id, review.interrupt_id, stale))
        assert refused.reason == "args_changed"
        assert short(stale.digest) in refused.message
        assert log.runs == []
        assert [r.interrupt_id for r in await service.pending_reviews(thread_id)] == [
            review.interrupt_id
        ]
        # the same review, approved for what it shows, runs
        bound = Approve("U1", args_digest(review.args))
        outcome(await service.answer(thread_id, review.interrupt_id, bound))
        assert log.runs == [("weather_search", {"city": "sf"})]


async def test_an_edit_whose_arguments_changed_under_its_digest_is_refused(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    log = ToolLog()
    model = ScriptedModel(
        [tool_calls(("book_hotel", {"city": "sf", "nights": 1})), AIMessage(content="Done.")]
    )
    async with agent_factory(model=model, registry=registry_for(log)) as service:
        [review] = outcome(await service.start_turn(thread_id, "go")).pending
        approved = {"city": "LA", "nights": 2}
        # the edit as stored, changed after it was approved (one night more)
        changed = Edit({"city": "LA", "nights": 3}, "U1", args_digest(approved))
        refused = refusal(await service.answer(thread_id, review.interrupt_id, changed))
        assert refused.reason == "args_changed"
        assert log.runs == []
        outcome(
            await service.answer(
                thread_id, review.interrupt_id, Edit(approved, "U1", args_digest(approved))
            )
        )
        assert log.runs == [("book_hotel", approved)]


async def test_the_graph_itself_refuses_a_resume_bound_to_other_arguments(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    """Past the service (a hosted client resuming the graph directly): the review node refuses
    the mismatched digest and asks the same review again, with the reason; nothing runs."""
    log = ToolLog()
    async with agent_factory(model=weather_model(), registry=registry_for(log)) as service:
        [review] = outcome(await service.start_turn(thread_id, "go")).pending
        wrong = {"action": "continue", "digest": args_digest({"city": "la"})}
        steps = await stream_steps(service, Command(resume={review.interrupt_id: wrong}), thread_id)
        assert log.runs == []
        asked = [s for s in steps if s.node == "__interrupt__"]
        assert asked, [s.node for s in steps]
        [again] = asked[-1].update
        assert "arguments changed since they were approved" in again.value["error"]
        assert again.value["tool_call"]["args"] == {"city": "sf"}
        right = {"action": "continue", "digest": args_digest({"city": "sf"})}
        await stream_steps(service, Command(resume={again.id: right}), thread_id)
        assert log.runs == [("weather_search", {"city": "sf"})]


async def test_run_tool_refuses_a_call_whose_arguments_differ_from_the_approved_digest() -> None:
    """The last check, just before the tool is invoked: a decision taken in for arguments that
    are not the ones about to run (the state changed in between) runs nothing; the model is
    told why. A matching and an unbound decision run."""
    log = ToolLog()
    nodes = AgentNodes(ScriptedModel([]), registry_for(log))
    message = AIMessage(
        content="",
        tool_calls=[
            {"name": "weather_search", "args": {"city": "sf"}, "id": "c1", "type": "tool_call"},
            {"name": "weather_search", "args": {"city": "ny"}, "id": "c2", "type": "tool_call"},
            {"name": "weather_search", "args": {"city": "rome"}, "id": "c3", "type": "tool_call"},
        ],
    )

    def record(call_id: str, digest: str | None) -> Any:
        return {
            "tool_call_id": call_id,
            "action": "continue",
            "args": None,
            "feedback": None,
            "by": "U1",
            "digest": digest,
        }

    state: AgentState = {
        "messages": [HumanMessage("go"), message],
        "decisions": {
            "c1": record("c1", args_digest({"city": "la"})),  # approved other arguments
            "c2": record("c2", args_digest({"city": "ny"})),
            "c3": record("c3", None),  # the seed's wire: unbound
        },
    }
    graph = StateGraph(AgentState)  # run_tool alone, as LangGraph runs it
    graph.add_node("run_tool", nodes.run_tool)
    graph.add_edge(START, "run_tool")
    graph.add_edge("run_tool", END)
    final = await graph.compile().ainvoke(state)
    by_id = {m.tool_call_id: m for m in final["messages"] if isinstance(m, ToolMessage)}
    assert sorted(args["city"] for args in log.of("weather_search")) == ["ny", "rome"]
    assert by_id["c1"].status == "error"
    assert "arguments changed since they were approved" in str(by_id["c1"].content)
    assert by_id["c2"].status == "success" and by_id["c3"].status == "success"
