"""The remote agent's pure parts: how a LangGraph Server's interrupts become review cards, how
the answers go back, how its settings are read. No server, no database."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from bot import blocks
from bot.config import BotSettings, ConfigError, remote_from_env
from bot.policy import PolicyError
from bot.startup import check_policy_tools
from graph import Approve, Edit, Expire, Feedback
from graph.remote import RemoteAgent, RemoteSettings, remote_client
from graph.remote_reviews import (
    HITL_DEFAULT_DESCRIPTION,
    UNKNOWN_TOOL,
    allowed,
    asks_of,
    interrupt_of,
    resume_value,
)
from graph.remote_wire import (
    DECISIONS,
    answer_from_store,
    check_decision,
    declined,
    outcome_of,
    past_decision,
    server_thread_id,
    stored_answer,
)
from tests.support.block_kit import assert_valid_blocks

HITL_VALUE = {
    "action_requests": [
        {
            "name": "weather_search",
            "args": {"city": "sf"},
            "description": "Tool execution requires approval\n\nTool: weather_search\nArgs: "
            "{'city': 'sf'}",
        },
        {"name": "weather_search", "args": {"city": "nyc"}, "description": "Check nyc"},
    ],
    "review_configs": [
        {"action_name": "weather_search", "allowed_decisions": ["approve", "reject"]},
        {"action_name": "weather_search", "allowed_decisions": ["approve", "edit", "reject"]},
    ],
}
MESSAGES: list[dict[str, Any]] = [
    {"type": "human", "content": "weather in sf and nyc", "name": "U0ALICE", "id": "m1"},
    {"type": "human", "content": "yes do it", "name": "U0CAROL", "id": "m2"},
    {
        "type": "ai",
        "content": "",
        "id": "a1",
        "tool_calls": [
            {"name": "weather_search", "args": {"city": "sf"}, "id": "call_sf"},
            {"name": "weather_search", "args": {"city": "nyc"}, "id": "call_nyc"},
        ],
    },
]


def test_each_action_request_is_its_own_review_addressed_within_its_interrupt() -> None:
    asks = asks_of("T", [{"id": "i1", "value": HITL_VALUE}], MESSAGES)
    assert [a.address for a in asks] == ["i1#0", "i1#1"]
    assert [interrupt_of(a.address) for a in asks] == ["i1", "i1"]
    assert [a.siblings for a in asks] == [2, 2]
    first, second = (a.review.request for a in asks)
    assert first["tool_call"] == {"name": "weather_search", "args": {"city": "sf"}, "id": "call_sf"}
    assert second["tool_call"]["id"] == "call_nyc"  # matched to the model's call
    assert first["requesters"] == ["U0ALICE", "U0CAROL"]  # four-eyes keeps both off it
    assert first["allowed_decisions"] == ["approve", "feedback"]
    assert "allowed_decisions" not in second  # everything allowed: the card is unchanged


def test_the_middleware_default_description_does_not_repeat_the_arguments() -> None:
    first, second = asks_of("T", [{"id": "i1", "value": HITL_VALUE}], MESSAGES)
    assert first.review.request["tool"]["description"] == HITL_DEFAULT_DESCRIPTION
    assert "sf" not in first.review.request["tool"]["description"]  # redaction stays whole
    assert second.review.request["tool"]["description"] == "Check nyc"  # the graph's own


def test_a_single_interrupt_keeps_its_id_and_the_seed_value_as_is() -> None:
    seed = {
        "question": "Is this correct?",
        "tool_call": {"name": "weather_search", "args": {"city": "sf"}, "id": "toolu_1"},
        "tool": {"name": "weather_search", "description": "Weather", "args_schema": {}},
        "requested_by": "U0ALICE",
    }
    [ask] = asks_of("T", [{"id": "i9", "value": seed}], [])
    assert ask.address == "i9" and ask.siblings == 1
    assert ask.review.request == seed
    assert resume_value(ask, [Approve("U0BOB")]) == {"action": "continue", "by": "U0BOB"}


def test_an_unknown_interrupt_is_readable_json_and_answered_only_in_words() -> None:
    value = {"please": "pick a colour", "options": ["red", "blue"]}
    [ask] = asks_of("T", [{"id": "i2", "value": value}], MESSAGES)
    request = ask.review.request
    assert request["tool_call"]["name"] == UNKNOWN_TOOL
    assert '"please": "pick a colour"' in request["tool_call"]["args"]["interrupt"]
    assert request["allowed_decisions"] == ["feedback"]
    assert not allowed(ask, Approve("U0BOB")) and allowed(ask, Feedback("red", "U0BOB"))
    assert resume_value(ask, [Feedback("red", "U0BOB")]) == "red"
    buttons = blocks.review_blocks(request, "ref")
    assert_valid_blocks(buttons)
    assert [e["action_id"] for e in buttons[-1]["elements"]] == ["review_feedback"]


def test_the_middleware_is_resumed_with_every_decision_in_order() -> None:
    asks = asks_of("T", [{"id": "i1", "value": HITL_VALUE}], MESSAGES)
    value = resume_value(asks[0], [Approve("U0BOB"), Edit({"city": "Oslo"}, "U0BOB")])
    assert value == {
        "decisions": [
            {"type": "approve"},
            {"type": "edit", "edited_action": {"name": "weather_search", "args": {"city": "Oslo"}}},
        ]
    }
    assert not allowed(asks[0], Edit({"city": "x"}))  # its config allows no edit
    assert allowed(asks[0], Expire("not decided in time"))  # an expiry is a reject's words


def test_an_approve_only_interrupt_is_left_unanswered_by_an_expiry() -> None:
    """Only approving answers it, and an expiry never runs the call: nothing is sent."""
    alone = {**HITL_VALUE, "review_configs": [{"allowed_decisions": ["approve"]}] * 2}
    [first, _] = asks_of("T", [{"id": "i1", "value": alone}], MESSAGES)
    assert not allowed(first, Expire("late")) and allowed(first, Approve("U0BOB"))
    refused = check_decision(first, Expire("late"))
    assert refused is not None and refused.reason == "left_unanswered"
    assert "`weather_search` did not run" in refused.message
    inbox = {
        "action_request": {"action": "weather_search", "args": {"city": "sf"}},
        "config": {"allow_accept": True, "allow_ignore": True},
    }
    [ask] = asks_of("T", [{"id": "i2", "value": inbox}], MESSAGES)
    assert allowed(ask, Expire("late"))
    assert resume_value(ask, [Expire("late")]) == [{"type": "ignore", "args": None}]


def test_the_card_offers_only_the_allowed_buttons() -> None:
    [first, _] = asks_of("T", [{"id": "i1", "value": HITL_VALUE}], MESSAGES)
    shown = blocks.review_blocks(first.review.request, "ref")
    assert_valid_blocks(shown)
    assert [e["action_id"] for e in shown[-1]["elements"]] == ["review_approve", "review_feedback"]


def test_answers_kept_on_the_store_read_back_as_given() -> None:
    for decision in (
        Approve("U0BOB"),
        Edit({"city": "Oslo"}, "U0BOB"),
        Feedback("no", "U0BOB"),
        Expire("late"),
    ):
        assert answer_from_store(stored_answer(decision)) == decision


def test_the_run_metadata_says_who_decided_without_the_arguments() -> None:
    run: Any = {
        "created_at": "2026-12-02T01:00:00+00:00",
        "metadata": {DECISIONS: {"i1#0": {"action": "update", "by": "U0BOB"}}},
    }
    previous = past_decision("i1#0", run)
    assert previous is not None and previous.action == "update" and previous.decided_by == "U0BOB"
    assert past_decision("i1#1", run) is None


def test_a_call_the_middleware_declined_is_not_shown_as_a_result() -> None:
    rejected = {
        "type": "tool",
        "content": "User rejected the tool call",
        "tool_call_id": "call_nyc",
        "name": "weather_search",
        "status": "error",
        "additional_kwargs": {
            "lc_source": "hitl_interrupt_decision",
            "lc_data": {"decision": "reject"},
        },
    }
    ran = {"type": "tool", "content": "sunny", "tool_call_id": "call_sf", "name": "weather_search"}
    assert declined(rejected) and not declined(ran)
    outcome = outcome_of("T", [rejected, ran, {"type": "ai", "content": "Done"}], [])
    assert [r.status for r in outcome.tool_results] == ["declined", "success"]
    assert outcome.reply == "Done"


def test_server_threads_are_the_same_everywhere_and_forever() -> None:
    assert server_thread_id("slack:T1:C1:1.2") == server_thread_id("slack:T1:C1:1.2")
    assert server_thread_id("slack:T1:C1:1.2") != server_thread_id("slack:T1:C1:1.3")
    assert server_thread_id("slack:T1:C1:1.2") == str(
        uuid.uuid5(uuid.UUID("6f1b6a0e-3c55-4d7e-9a57-2f0d3c1b9e41"), "slack:T1:C1:1.2")
    )


def test_remote_settings_from_the_environment() -> None:
    assert remote_from_env({}) is None
    settings = remote_from_env(
        {
            "AGENT_URL": "https://lg.example.com/",
            "AGENT_ASSISTANT": "agent",
            "LANGGRAPH_API_KEY": "k",
        }
    )
    assert settings is not None
    assert (settings.url, settings.assistant, settings.api_key) == (
        "https://lg.example.com",
        "agent",
        "k",
    )
    with pytest.raises(ConfigError, match="AGENT_URL is not"):
        remote_from_env({"AGENT_ASSISTANT": "agent"})
    with pytest.raises(ConfigError, match="http"):
        remote_from_env({"AGENT_URL": "lg.example.com"})


def test_the_key_goes_in_x_api_key_and_only_the_configured_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANGSMITH_API_KEY", "not-for-this-server")
    keyed = remote_client(RemoteSettings(url="http://127.0.0.1:9", api_key="lg-key"))
    assert keyed.http.client.headers["x-api-key"] == "lg-key"
    bare = remote_client(RemoteSettings(url="http://127.0.0.1:9"))
    assert "x-api-key" not in bare.http.client.headers


def test_a_policy_naming_tools_is_not_checked_against_a_remote_agent(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('[tools.deploy_app]\napprovers = ["U0BOB"]\n')
    settings = BotSettings(bot_token="xoxb-1", signing_secret="s", policy_file=policy_file)
    policy = settings.load_policy()
    remote = RemoteAgent(remote_client(RemoteSettings(url="http://127.0.0.1:9")), None)
    check_policy_tools(settings, policy, remote)  # the server does not list its tools
    with pytest.raises(PolicyError, match="deploy_app"):
        policy.check_tools(["weather_search"])  # in process, the same file stops the start


def test_an_edit_the_tool_schema_refuses_is_refused_before_anything_is_sent() -> None:
    seed = {
        "question": "Is this correct?",
        "tool_call": {"name": "weather_search", "args": {"city": "sf"}, "id": "toolu_1"},
        "tool": {
            "name": "weather_search",
            "description": "Weather",
            "args_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
        "requested_by": "U0ALICE",
    }
    [ask] = asks_of("T", [{"id": "i9", "value": seed}], [])
    blank = check_decision(ask, Edit({"city": "  "}, "U0BOB"))
    assert blank is not None and blank.argument == "city"
    wrong = check_decision(ask, Edit({"city": 3}, "U0BOB"))
    assert wrong is not None and wrong.argument == "city"
    assert check_decision(ask, Edit({"city": "Oslo"}, "U0BOB")) is None
    [hitl, _] = asks_of("T", [{"id": "i1", "value": HITL_VALUE}], MESSAGES)
    assert check_decision(hitl, Edit({"anything": 1}, "U0BOB")) is not None  # no edit allowed there
