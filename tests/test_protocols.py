"""graph/protocols.py: the three human-in-the-loop vocabularies, read and written.

The shapes are checked against the upstream definitions: langgraph's ``HumanInterrupt`` /
``HumanResponse`` TypedDicts and LangChain's ``HITLRequest`` / decisions, imported here, so a
renamed field upstream fails these tests.
"""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain.agents.middleware import human_in_the_loop as hitl
from langgraph.prebuilt import interrupt as inbox

from graph.decisions import Approve, Edit, Expire, Feedback
from graph.protocols import (
    ALL_ALLOWED,
    DISMISSED,
    MAX_RESUME_BYTES,
    Answer,
    Dismiss,
    ParsedResume,
    PendingAction,
    ProtocolDecision,
    Unanswerable,
    Unreadable,
    classify,
    expirable,
    hitl_decision,
    inbox_fields,
    inbox_response,
    is_human_interrupt,
    parse_resume,
    pending_actions,
    resume_value,
    single_seed_resume,
)

SEED = {
    "question": "Is this correct?",
    "tool_call": {"name": "weather_search", "args": {"city": "sf"}, "id": "toolu_1"},
    "tool": {
        "name": "weather_search",
        "description": "Weather.",
        "args_schema": {"type": "object"},
    },
    "requested_by": None,
}
INBOX = {
    "action_request": {"action": "weather_search", "args": {"city": "sf"}},
    "config": {
        "allow_accept": True,
        "allow_edit": True,
        "allow_respond": True,
        "allow_ignore": True,
    },
    "description": "Check the city",
}
HITL = {
    "action_requests": [
        {"name": "weather_search", "args": {"city": "sf"}, "description": "d1"},
        {"name": "send_email", "args": {"to": "a@b"}, "description": "d2"},
    ],
    "review_configs": [
        {"action_name": "weather_search", "allowed_decisions": ["approve", "edit", "reject"]},
        {"action_name": "send_email", "allowed_decisions": ["approve", "respond"]},
    ],
}
PER_CALL = {
    "type": "tool_approval",
    "tool_call_id": "call_1",
    "name": "weather_search",
    "args": {"city": "sf"},
    "description": "d",
}


def test_the_field_names_are_upstream_s() -> None:
    assert set(get_type_hints(inbox.HumanInterrupt)) == set(INBOX)
    assert set(get_type_hints(inbox.HumanInterruptConfig)) == set(INBOX["config"])
    assert set(get_type_hints(inbox.ActionRequest)) == set(INBOX["action_request"])
    assert set(get_type_hints(inbox.HumanResponse)) == {"type", "args"}
    assert set(get_type_hints(hitl.HITLRequest)) == set(HITL)
    assert set(get_type_hints(hitl.ActionRequest)) == {"name", "args", "description"}
    assert set(get_type_hints(hitl.ReviewConfig)) >= {"action_name", "allowed_decisions"}
    assert set(get_type_hints(hitl.EditDecision)) == {"type", "edited_action"}
    assert set(get_type_hints(hitl.RejectDecision)) == {"type", "message"}
    assert set(get_type_hints(hitl.ToolApprovalRequest)) == set(PER_CALL)
    assert set(get_type_hints(hitl.HITLResponse)) == {"decisions"}


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        (SEED, "seed"),
        ({**SEED, **inbox_fields("weather_search", {"city": "sf"}, "d", ALL_ALLOWED)}, "seed"),
        (INBOX, "agent_inbox"),
        ([INBOX, INBOX], "agent_inbox"),
        (HITL, "hitl"),
        (PER_CALL, "hitl_call"),
        (None, "unknown"),
        ("Is this correct?", "unknown"),
        ({}, "unknown"),
        ([], "unknown"),
        ({"action_request": {"action": 1}, "config": {}}, "unknown"),
        ({"action_request": {"action": "x"}}, "unknown"),
        ({"action_requests": [], "review_configs": []}, "unknown"),
        ({"question": "q", "tool_call": {"name": "x"}}, "unknown"),
    ],
)
def test_classify(value: Any, shape: str) -> None:
    assert classify(value) == shape


def test_our_graph_s_value_passes_agent_inbox_s_schema_check() -> None:
    """``isAgentInboxInterruptSchema``: an ``action_request`` object with an ``action``, and a
    ``config`` object; and without ``action_requests``, which Agent Inbox would read first as a
    middleware request."""
    ours = {**SEED, **inbox_fields("weather_search", {"city": "sf"}, "d", ALL_ALLOWED)}
    assert is_human_interrupt(ours) and "action_requests" not in ours
    assert isinstance(ours["action_request"]["action"], str) and isinstance(ours["config"], dict)


def test_pending_actions_per_shape() -> None:
    [seed] = pending_actions(SEED)
    assert (seed.name, seed.args, seed.tool_call_id) == (
        "weather_search",
        {"city": "sf"},
        "toolu_1",
    )
    assert seed.allowed == ALL_ALLOWED and seed.args_schema == {"type": "object"}

    [item] = pending_actions({**INBOX, "config": {**INBOX["config"], "allow_ignore": False}})
    assert item.allowed == {"approve", "edit", "feedback"} and item.description == "Check the city"
    assert len(pending_actions([INBOX, INBOX])) == 2

    first, second = pending_actions(HITL)
    assert first.allowed == {"approve", "edit", "feedback", "ignore"}
    assert second.name == "send_email" and second.allowed == {"approve", "feedback"}

    [call] = pending_actions(PER_CALL)
    assert call.tool_call_id == "call_1" and call.allowed == ALL_ALLOWED
    assert pending_actions({"anything": 1}) == ()


def test_hitl_configs_matched_by_name_when_not_one_per_request() -> None:
    value = {**HITL, "review_configs": list(reversed(HITL["review_configs"]))}
    first, second = pending_actions(value)
    assert "edit" in first.allowed and second.allowed == {"approve", "feedback"}


def test_resume_values_per_shape() -> None:
    assert resume_value(SEED, [Approve("U1")]) == {"action": "continue", "by": "U1"}
    assert resume_value(SEED, [Dismiss()]) == {"action": "feedback", "data": DISMISSED}
    assert resume_value(INBOX, [Edit({"city": "SF"})]) == [
        {"type": "edit", "args": {"action": "weather_search", "args": {"city": "SF"}}}
    ]
    assert resume_value([INBOX, INBOX], [Feedback("no"), Dismiss()]) == [
        {"type": "response", "args": "no"},
        {"type": "ignore", "args": None},
    ]
    assert resume_value(HITL, [Edit({"city": "SF"}), Feedback("not now")]) == {
        "decisions": [
            {"type": "edit", "edited_action": {"name": "weather_search", "args": {"city": "SF"}}},
            {"type": "respond", "message": "not now"},  # only respond is allowed there
        ]
    }
    assert resume_value(HITL, [Dismiss(), Approve()]) == {
        "decisions": [{"type": "reject"}, {"type": "approve"}]
    }
    assert resume_value(PER_CALL, [Expire("too late")]) == {"type": "reject", "message": "too late"}


def test_resume_values_that_cannot_be_written_are_refused() -> None:
    assert isinstance(resume_value(HITL, [Approve()]), Unanswerable)  # one per request
    refused = resume_value(HITL, [Approve(), Edit({"to": "c@d"})])
    assert isinstance(refused, Unanswerable) and "send_email" in refused.message
    assert isinstance(resume_value(HITL, [Approve(), Dismiss()]), Unanswerable)  # respond only
    no_edit = {**INBOX, "config": {**INBOX["config"], "allow_edit": False}}
    assert isinstance(resume_value(no_edit, [Edit({"city": "x"})]), Unanswerable)
    assert isinstance(resume_value({"what": 1}, [Approve()]), Unanswerable)
    only_ignore = {**INBOX, "config": {"allow_ignore": True}}
    assert isinstance(resume_value(only_ignore, [Feedback("x")]), Unanswerable)
    assert resume_value(only_ignore, [Dismiss()]) == [{"type": "ignore", "args": None}]


def test_an_expiry_never_runs_the_call() -> None:
    """An expiry is words where the interrupt takes words, ``ignore``/``reject`` where it takes
    only that, and refused (never ``approve``) where nothing but running the call answers it."""
    accept_or_ignore = {**INBOX, "config": {"allow_accept": True, "allow_ignore": True}}
    assert resume_value(accept_or_ignore, [Expire("late")]) == [{"type": "ignore", "args": None}]
    approve_or_reject = {
        "action_requests": [{"name": "weather_search", "args": {"city": "sf"}}],
        "review_configs": [
            {"action_name": "weather_search", "allowed_decisions": ["approve", "reject"]}
        ],
    }
    assert resume_value(approve_or_reject, [Expire("late")]) == {
        "decisions": [{"type": "reject", "message": "late"}]
    }
    approve_alone = {
        **approve_or_reject,
        "review_configs": [{"action_name": "weather_search", "allowed_decisions": ["approve"]}],
    }
    [action] = pending_actions(approve_alone)
    assert not expirable(action) and expirable(pending_actions(accept_or_ignore)[0])
    assert isinstance(resume_value(approve_alone, [Expire("late")]), Unanswerable)
    accept_alone = {**INBOX, "config": {"allow_accept": True}}
    assert isinstance(resume_value(accept_alone, [Expire("late")]), Unanswerable)


@pytest.mark.parametrize(
    ("resume", "answers"),
    [
        ({"action": "continue"}, [Answer(Approve())]),
        (
            {"action": "update", "data": {"city": "x"}, "by": "U1"},
            [Answer(Edit({"city": "x"}, "U1"))],
        ),
        ({"action": "feedback", "data": "use x"}, [Answer(Feedback("use x"))]),
        ({"action": "feedback", "data": "late", "by": "expiry"}, [Answer(Expire("late"))]),
        ([{"type": "accept", "args": None}], [Answer(Approve())]),
        (  # Agent Inbox sends the unchanged action request with an accept
            [{"type": "accept", "args": {"action": "weather_search", "args": {"city": "sf"}}}],
            [Answer(Approve())],
        ),
        (
            [{"type": "edit", "args": {"action": "weather_search", "args": {"city": "SF"}}}],
            [Answer(Edit({"city": "SF"}), "weather_search")],
        ),
        ([{"type": "response", "args": "use x"}], [Answer(Feedback("use x"))]),
        ([{"type": "ignore", "args": None}], [Answer(Dismiss())]),
        ({"type": "ignore", "args": None}, [Answer(Dismiss())]),
        (
            {"decisions": [{"type": "approve"}, {"type": "reject", "message": "no"}]},
            [Answer(Approve()), Answer(Feedback("no"))],
        ),
        ({"decisions": [{"type": "reject"}]}, [Answer(Dismiss())]),
        ({"decisions": [{"type": "respond", "message": "42"}]}, [Answer(Feedback("42"))]),
        (
            {"decisions": [{"type": "edit", "edited_action": {"name": "w", "args": {"c": 1}}}]},
            [Answer(Edit({"c": 1}), "w")],
        ),
        (  # what Agent Inbox sends to a middleware agent: its own args under HITL types
            {
                "decisions": [
                    {"type": "reject", "args": "no"},
                    {"type": "edit", "args": {"action": "w", "args": {"c": 1}}},
                ]
            },
            [Answer(Feedback("no")), Answer(Edit({"c": 1}), "w")],
        ),
        ({"type": "approve"}, [Answer(Approve())]),
    ],
)
def test_parse_resume(resume: Any, answers: list[Answer]) -> None:
    parsed = parse_resume(resume)
    assert isinstance(parsed, ParsedResume), parsed
    assert list(parsed.answers) == answers


@pytest.mark.parametrize(
    "resume",
    [
        None,
        "continue",
        42,
        [],
        {"decisions": []},
        {"decisions": "approve"},
        {"action": "run"},
        {"action": "update", "data": "x"},
        {"action": "feedback"},
        [{"type": "accept"}, "x"],
        [{"type": "maybe"}],
        [{"type": "response", "args": ""}],
        [{"type": "response", "args": 3}],
        [{"type": "edit", "args": {"action": "w"}}],
        [{"type": "edit", "args": {"action": 3, "args": {}}}],
        [{"type": "edit", "args": None}],
        {"decisions": [{"type": "respond", "message": "  "}]},
        {"action": "feedback", "data": "x" * 200_000},
    ],
)
def test_unreadable_resume_values(resume: Any) -> None:
    assert isinstance(parse_resume(resume), Unreadable)


def test_single_seed_resume_for_our_graph() -> None:
    sent = {"action": "update", "data": {"city": 1}, "extra": True}
    assert single_seed_resume(sent, "weather_search") == sent  # as sent, for parse_decision
    assert single_seed_resume([{"type": "accept", "args": None}], "w") == {"action": "continue"}
    assert single_seed_resume({"decisions": [{"type": "reject"}]}, "w") == {
        "action": "feedback",
        "data": DISMISSED,
    }
    two = single_seed_resume({"decisions": [{"type": "approve"}, {"type": "approve"}]}, "w")
    assert isinstance(two, Unreadable) and "one call" in two.message
    switched = single_seed_resume([{"type": "edit", "args": {"action": "rm", "args": {}}}], "w")
    assert isinstance(switched, Unreadable) and "cannot change the tool" in switched.message


# ---- round trips --------------------------------------------------------------------------

_text = st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and t != DISMISSED)
_args = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    max_size=4,
)
_by = st.none() | st.sampled_from(["U1", "U2"])
decisions: st.SearchStrategy[ProtocolDecision] = st.one_of(
    st.builds(Approve, _by),
    st.builds(Edit, _args, _by),
    st.builds(Feedback, _text, _by),
    st.builds(Expire, _text),
    st.builds(Dismiss, _by),
)


def _without_by(decision: ProtocolDecision) -> ProtocolDecision:
    """What survives a vocabulary that cannot say who decided, nor that time ran out."""
    if isinstance(decision, Approve):
        return Approve()
    if isinstance(decision, Edit):
        return Edit(dict(decision.args))
    if isinstance(decision, Feedback | Expire):
        return Feedback(decision.text)
    return Dismiss()


@given(decisions)
def test_seed_round_trip_keeps_everything(decision: ProtocolDecision) -> None:
    parsed = parse_resume(resume_value(SEED, [decision]))
    assert isinstance(parsed, ParsedResume)
    [answer] = parsed.answers
    expected = Edit(dict(decision.args), decision.by) if isinstance(decision, Edit) else decision
    assert answer.decision == expected


@given(st.lists(decisions, min_size=1, max_size=3))
def test_agent_inbox_round_trip(chosen: list[ProtocolDecision]) -> None:
    value = [
        {**INBOX, "action_request": {"action": f"tool{i}", "args": {}}} for i in range(len(chosen))
    ]
    parsed = parse_resume(resume_value(value, chosen))
    assert isinstance(parsed, ParsedResume) and parsed.shape == "agent_inbox"
    assert [a.decision for a in parsed.answers] == [_without_by(d) for d in chosen]
    assert [a.action for a in parsed.answers] == [
        f"tool{i}" if isinstance(d, Edit) else None for i, d in enumerate(chosen)
    ]


@given(st.lists(decisions, min_size=1, max_size=3))
def test_hitl_round_trip(chosen: list[ProtocolDecision]) -> None:
    value = {
        "action_requests": [{"name": f"t{i}", "args": {}} for i in range(len(chosen))],
        "review_configs": [
            {"action_name": f"t{i}", "allowed_decisions": ["approve", "edit", "reject"]}
            for i in range(len(chosen))
        ],
    }
    resume = resume_value(value, chosen)
    assert not isinstance(resume, Unanswerable)
    assert len(resume["decisions"]) == len(chosen)
    parsed = parse_resume(resume)
    assert isinstance(parsed, ParsedResume) and parsed.shape == "hitl"
    assert [a.decision for a in parsed.answers] == [_without_by(d) for d in chosen]


@given(decisions)
def test_per_call_round_trip(decision: ProtocolDecision) -> None:
    resume = resume_value(PER_CALL, [decision])
    parsed = parse_resume(resume)
    assert isinstance(parsed, ParsedResume) and parsed.shape == "hitl_call"
    assert [a.decision for a in parsed.answers] == [_without_by(decision)]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["type", "args", "action", "data", "decisions", "message", "name", "x"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(_json, st.lists(decisions, max_size=3))
def test_every_function_is_total(value: Any, chosen: list[ProtocolDecision]) -> None:
    """Whatever a client or a graph sends: a shape, a list, a refusal; never an exception."""
    assert classify(value) in ("seed", "agent_inbox", "hitl", "hitl_call", "unknown")
    assert isinstance(pending_actions(value), tuple)
    resume_value(value, chosen)
    assert isinstance(parse_resume(value), ParsedResume | Unreadable)
    assert isinstance(single_seed_resume(value, "w"), dict | Unreadable)


def _damaged(value: Any, path: list[int], replacement: Any) -> Any:
    """``value`` with the item that ``path`` walks to (indexes into keys or items) replaced."""
    if not path or not isinstance(value, dict | list) or not value:
        return replacement
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = _damaged(value[key], path[1:], replacement)  # type: ignore[index]
    return copy


@given(
    st.sampled_from([SEED, INBOX, [INBOX, INBOX], HITL, PER_CALL]),
    st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=4),
    _json,
    st.lists(decisions, min_size=1, max_size=2),
)
def test_damaged_interrupts_are_refused_not_raised(
    value: Any, path: list[int], replacement: Any, chosen: list[ProtocolDecision]
) -> None:
    damaged = _damaged(value, path, replacement)
    for action in pending_actions(damaged):
        assert isinstance(action.name, str) and isinstance(action.args, dict)
    resume_value(damaged, chosen)


# -- the details each vocabulary carries (mutation testing: docs/mutation.md) ----------------


def test_each_permission_is_written_to_its_own_agent_inbox_flag() -> None:
    flags = {"approve": "allow_accept", "edit": "allow_edit", "feedback": "allow_respond"}
    flags["ignore"] = "allow_ignore"
    for word, flag in flags.items():
        fields = inbox_fields("w", {"c": 1}, "why", frozenset({word}))
        assert fields == {
            "action_request": {"action": "w", "args": {"c": 1}},
            "config": {name: name == flag for name in flags.values()},
            "description": "why",
        }


def test_pending_actions_carry_descriptions_schemas_and_permissions() -> None:
    assert pending_actions(SEED)[0].description == "Weather."  # the tool's, by default
    assert pending_actions(INBOX)[0].args == {"city": "sf"}
    [own] = pending_actions({**SEED, "description": "Mine."})
    assert own.description == "Mine."  # the value's own words before the tool's
    [seed] = pending_actions({**SEED, "config": {"allow_accept": True}, "tool": "junk"})
    assert (seed.description, seed.allowed, seed.args_schema) == (None, {"approve"}, None)
    [seed] = pending_actions({**SEED, "tool": {"description": 3, "args_schema": "x"}})
    assert (seed.description, seed.args_schema) == (None, None)

    schema = {"type": "object", "properties": {}}
    configs = [{"allowed_decisions": ["approve", "bogus"], "args_schema": schema}, {}]
    first, second = pending_actions({**HITL, "review_configs": configs})  # by position
    assert (first.description, first.allowed, first.args_schema) == ("d1", {"approve"}, schema)
    assert (second.description, second.allowed, second.args_schema) == ("d2", frozenset(), None)
    _, unconfigured = pending_actions({**HITL, "review_configs": HITL["review_configs"][:1]})
    assert unconfigured.allowed == frozenset()  # no config names it: nothing is allowed

    [call] = pending_actions(PER_CALL)
    assert (call.name, call.args, call.description) == ("weather_search", {"city": "sf"}, "d")
    bare = {"action_request": {"action": "w"}, "config": {"allow_accept": True}}
    assert is_human_interrupt(bare)
    assert not is_human_interrupt({**bare, "action_request": {"action": "w", "args": "x"}})
    [item] = pending_actions(bare)
    assert (item.name, item.args, item.allowed) == ("w", {}, {"approve"})


def test_refusals_say_which_action_and_what_it_allows() -> None:
    assert resume_value(HITL, [Approve()]) == Unanswerable(
        "this interrupt asks about 2 action(s); 1 decision(s) were given (one per action, in order)"
    )
    assert resume_value(HITL, [Approve(), Edit({})]) == Unanswerable(
        "action 2 (send_email) does not allow edit; it allows: approve, feedback"
    )
    closed = {**INBOX, "config": {}}
    assert resume_value(closed, [Approve()]) == Unanswerable(
        "action 1 (weather_search) does not allow approve; it allows: nothing"
    )
    assert resume_value({"what": 1}, []) == Unanswerable(
        "the interrupt is none of the known review shapes"
    )


def test_answers_written_for_each_vocabulary() -> None:
    action = PendingAction(name="w", args={}, description=None, allowed=frozenset({"ignore"}))
    assert inbox_response(Approve(), action) == {"type": "accept", "args": None}
    # an expiry where only ignoring is allowed: ignore (the words cannot be sent)
    assert inbox_response(Expire("late"), action) == {"type": "ignore", "args": None}
    assert hitl_decision(Feedback(""), action) == {"type": "reject", "message": ""}


def test_who_decided_is_read_from_every_vocabulary() -> None:
    by = {"by": "U1"}
    for resume, decision in [
        ([{"type": "accept", **by}], Approve("U1")),
        ({"decisions": [{"type": "approve", **by}]}, Approve("U1")),
        ([{"type": "ignore", **by}], Dismiss("U1")),
        ({"decisions": [{"type": "reject", **by}]}, Dismiss("U1")),
        ([{"type": "response", "args": "no", **by}], Feedback("no", "U1")),
        ([{"type": "accept", "by": ""}], Approve()),
        ([{"type": "accept", "by": 3}], Approve()),
    ]:
        parsed = parse_resume(resume)
        assert isinstance(parsed, ParsedResume) and parsed.answers[0].decision == decision
    edit = [{"type": "edit", "args": {"action": "w", "args": {"c": 1}}, **by}]
    assert parse_resume(edit) == ParsedResume("agent_inbox", (Answer(Edit({"c": 1}, "U1"), "w"),))


@pytest.mark.parametrize(
    ("resume", "shape"),
    [
        ({"action": "continue"}, "seed"),
        ({"decisions": [{"type": "approve"}]}, "hitl"),
        ([{"type": "accept"}], "agent_inbox"),
        ({"type": "accept"}, "agent_inbox"),
        ({"type": "ignore"}, "agent_inbox"),
        ({"type": "approve"}, "hitl_call"),
        ({"type": "reject", "message": "no"}, "hitl_call"),
    ],
)
def test_a_resume_value_is_read_as_its_vocabulary(resume: Any, shape: str) -> None:
    parsed = parse_resume(resume)
    assert isinstance(parsed, ParsedResume) and parsed.shape == shape


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    ("resume", "why"),
    [
        (
            {"action": "update", "data": "x"},
            "'update' needs 'data': an object of the new arguments",
        ),
        ({"action": "feedback"}, "'feedback' needs 'data': the words to send back to the agent"),
        ({"action": "run"}, "unknown action 'run'; use one of: continue, update, feedback"),
        (
            [{"type": "edit", "args": None}],
            "an 'edit' needs the edited action: an object with its 'args'",
        ),
        (
            [{"type": "edit", "args": {"action": "w"}}],
            "an 'edit' needs 'args': an object of the new arguments",
        ),
        (
            [{"type": "edit", "args": {"action": 3, "args": {}}}],
            "an edit's action name must be text",
        ),
        ([{"type": "response", "args": 3}], "'args' must be text"),
        ({"decisions": [{"type": "respond", "message": 3}]}, "'message' must be text"),
        (["x"], "each response must be an object with a 'type'"),
        (
            [{"type": "response", "args": ""}],
            "'response' needs the words to send back to the agent",
        ),
        (
            [{"type": "maybe"}],
            "unknown response type 'maybe'; use one of: accept, edit, response, ignore (Agent "
            "Inbox) or approve, edit, reject, respond (HumanInTheLoopMiddleware)",
        ),
        ({"decisions": []}, "'decisions' must be a non-empty list, one per action request"),
        ([], "an empty list of responses decides nothing"),
        (
            42,
            "a decision must be the seed's {'action': ...}, Agent Inbox's [{'type': ...}] or the "
            "middleware's {'decisions': [...]}",
        ),
        ({"action": "feedback", "data": "x" * 200_000}, "a decision may be at most 100 KB"),
        (_circular(), "a decision may be at most 100 KB"),
    ],
)
def test_an_unreadable_resume_value_says_why(resume: Any, why: str) -> None:
    assert parse_resume(resume) == Unreadable(why)


def test_a_resume_value_of_exactly_the_limit_is_read() -> None:
    empty = len('{"action": "feedback", "data": ""}')
    at_limit = {"action": "feedback", "data": "x" * (MAX_RESUME_BYTES - empty)}
    assert isinstance(parse_resume(at_limit), ParsedResume)
    assert isinstance(parse_resume({**at_limit, "data": at_limit["data"] + "x"}), Unreadable)
