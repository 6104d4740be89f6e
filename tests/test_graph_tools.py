"""The built-in Slack tools, run by the real graph against a fake Slack Web API client.

The fake client is the outside world (Slack), not the thing under test: it records each Web API
call and answers from a script. The tools get it through ``AgentContext(slack=...)``, as the
Slack side hands it in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from pydantic import ValidationError

from graph import AgentContext
from graph.tools import slack as slack_tools
from graph.tools.registry import ToolRegistry, build_registry, load_tool_module
from graph.tools.slack import IDEMPOTENCY_EVENT, CreateChannelArgs, InviteArgs
from sandbox.web_api import NO_JSON_BODY
from tests.conftest import AgentFactory
from tests.support.graph_helpers import (
    FakeSlack,
    call_ids,
    outcome,
    refusal,
    trailing_tool_messages,
)
from tests.support.scripted_model import ScriptedModel, tool_calls

OK: dict[str, Any] = {"ok": True}


def reviewed() -> ToolRegistry:
    return build_registry()


async def approve_all(
    agent_factory: AgentFactory,
    thread_id: str,
    proposal: AIMessage,
    slack: FakeSlack | None,
    decision: dict[str, Any] | None = None,
) -> tuple[Any, ScriptedModel]:
    """Propose, approve every review (with ``decision`` if given), return the final outcome."""
    model = ScriptedModel([proposal, AIMessage(content="Finished.")])
    context = AgentContext(slack=slack, requester="U_ASKER")
    async with agent_factory(model=model, registry=reviewed()) as service:
        started = outcome(await service.start_turn(thread_id, "do it", context=context))
        assert len(started.pending) == len(proposal.tool_calls)
        result: Any = started
        for review in started.pending:
            result = await service.answer(
                thread_id, review.interrupt_id, decision or {"action": "continue"}, context=context
            )
        return outcome(result), model


async def test_post_message_sends_channel_text_and_idempotency_metadata(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack({"chat.postMessage": {"ok": True, "ts": "1700000000.000100"}})
    proposal = tool_calls(("post_message", {"channel": "general", "text": "Hello *team*"}))
    call_id = proposal.tool_calls[0]["id"]
    done, _ = await approve_all(agent_factory, thread_id, proposal, slack)
    assert slack.calls_of("chat.postMessage") == [
        (
            "chat.postMessage",
            {
                "channel": "#general",
                "text": "Hello *team*",
                "metadata": {
                    "event_type": IDEMPOTENCY_EVENT,
                    "event_payload": {"tool_call_id": call_id},
                },
            },
        )
    ]
    [result] = done.tool_results
    assert (result.tool_call_id, result.status) == (call_id, "success")
    assert "1700000000.000100" in result.content
    assert done.reply == "Finished."


async def test_post_message_accepts_a_channel_mention_and_runs_edited_text(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack({"chat.postMessage": {"ok": True, "ts": "1.2"}})
    proposal = tool_calls(("post_message", {"channel": "<#C0ABC|general>", "text": "draft"}))
    await approve_all(
        agent_factory,
        thread_id,
        proposal,
        slack,
        {"action": "update", "data": {"channel": "<#C0ABC|general>", "text": "final"}},
    )
    [(method, body)] = slack.calls_of("chat.postMessage")
    assert method == "chat.postMessage"
    assert (body["channel"], body["text"]) == ("C0ABC", "final")


async def test_post_message_edit_with_empty_text_is_refused(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack({"chat.postMessage": OK})
    model = ScriptedModel([tool_calls(("post_message", {"channel": "#a", "text": "hi"}))])
    async with agent_factory(model=model, registry=reviewed()) as service:
        [review] = outcome(await service.start_turn(thread_id, "post")).pending
        refused = refusal(
            await service.answer(
                thread_id,
                review.interrupt_id,
                {"action": "update", "data": {"channel": "#a", "text": ""}},
                context=AgentContext(slack=slack),
            )
        )
        assert (refused.reason, refused.argument) == ("invalid_decision", "text")
        assert slack.calls == []


def test_create_channel_name_validation() -> None:
    assert CreateChannelArgs(name="#launch-plan").name == "launch-plan"
    assert CreateChannelArgs(name=" team_2026 ").name == "team_2026"
    for bad in ("Launch Plan", "UPPER", "", "-x" * 50, "a" * 81, "naïve"):
        with pytest.raises(ValidationError):
            CreateChannelArgs(name=bad)


async def test_create_channel_sends_a_clean_name(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack(
        {"conversations.create": {"ok": True, "channel": {"id": "C0NEW", "name": "launch-plan"}}}
    )
    proposal = tool_calls(("create_channel", {"name": "#launch-plan", "is_private": True}))
    done, _ = await approve_all(agent_factory, thread_id, proposal, slack)
    assert slack.calls == [("conversations.create", {"name": "launch-plan", "is_private": True})]
    assert done.tool_results[0].content == "Created #launch-plan (C0NEW)."


@pytest.mark.parametrize(
    ("proposed", "edit", "field"),
    [
        pytest.param(
            ("create_channel", {"name": "launch"}),
            {"name": "Launch Plan!"},
            "name",
            id="create_channel bad name",
        ),
        pytest.param(
            ("invite_users", {"channel": "#general", "users": ["U0AAA"]}),
            {"channel": "#general", "users": ["alice"]},
            "users",
            id="invite_users not user ids",
        ),
    ],
)
async def test_edit_failing_a_slack_tool_validator_is_refused(
    agent_factory: AgentFactory,
    thread_id: str,
    proposed: tuple[str, dict[str, Any]],
    edit: dict[str, Any],
    field: str,
) -> None:
    """The Slack tools' own validators must apply to edits, like type checks do.

    Regression: ``validate_args`` once checked only ``tool.tool_call_schema``, which for these
    tools (they take an injected ``runtime``) is a model rebuilt by langchain-core without the
    ``@field_validator``s of their ``args_schema``; the bad edit was accepted, the review consumed,
    and the tool failed at run time instead.
    """
    slack = FakeSlack({"conversations.create": OK, "conversations.invite": OK})
    model = ScriptedModel([tool_calls(proposed), AIMessage(content="Finished.")])
    async with agent_factory(model=model, registry=reviewed()) as service:
        [review] = outcome(await service.start_turn(thread_id, "do it")).pending
        decision = {"action": "update", "data": edit}
        checked = await service.check(thread_id, review.interrupt_id, decision)
        result = await service.answer(
            thread_id, review.interrupt_id, decision, context=AgentContext(slack=slack)
        )
        assert checked is not None, "check() accepted an edit the tool's schema rejects"
        refused = refusal(result)
        assert refused.reason == "invalid_decision"
        assert refused.argument == field
        assert field in refused.message
        assert len(await service.pending_reviews(thread_id)) == 1
        assert slack.calls == []


async def test_create_channel_with_a_bad_name_from_the_model_is_an_error_result(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack({"conversations.create": OK})
    proposal = tool_calls(("create_channel", {"name": "Launch Plan"}))
    done, model = await approve_all(agent_factory, thread_id, proposal, slack)
    assert slack.calls == []
    [result] = done.tool_results
    assert result.status == "error"
    assert done.reply == "Finished."
    [answer] = trailing_tool_messages(model.seen[1])
    assert answer.status == "error"


async def test_invite_users_resolves_a_channel_name_across_pages(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack(
        {
            "conversations.list": [
                {
                    "ok": True,
                    "channels": [{"id": "C001", "name": "random"}],
                    "response_metadata": {"next_cursor": "page2"},
                },
                {
                    "ok": True,
                    "channels": [{"id": "C002", "name": "general"}],
                    "response_metadata": {"next_cursor": ""},
                },
            ],
            "conversations.invite": OK,
        }
    )
    proposal = tool_calls(("invite_users", {"channel": "#general", "users": ["U0AAA", "<@U0BBB>"]}))
    done, _ = await approve_all(agent_factory, thread_id, proposal, slack)
    assert slack.methods() == ["conversations.list", "conversations.list", "conversations.invite"]
    assert slack.calls[0][1]["cursor"] == ""
    assert slack.calls[1][1]["cursor"] == "page2"
    assert slack.calls[2][1] == {"channel": "C002", "users": "U0AAA,U0BBB"}
    [result] = done.tool_results
    assert result.status == "success"
    assert "U0AAA" in result.content
    assert "U0BBB" in result.content


async def test_invite_users_to_an_unknown_channel_name_is_an_error(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack(
        {
            "conversations.list": {"ok": True, "channels": [{"id": "C1", "name": "random"}]},
            "conversations.invite": OK,
        }
    )
    proposal = tool_calls(("invite_users", {"channel": "#nowhere", "users": ["U0AAA"]}))
    done, _ = await approve_all(agent_factory, thread_id, proposal, slack)
    assert slack.methods() == ["conversations.list"]
    [result] = done.tool_results
    assert result.status == "error"
    assert "no channel named #nowhere" in result.content


def test_invite_args_reject_non_user_ids() -> None:
    assert InviteArgs(channel="C1", users=["<@U0AAA|alice>"]).users == ["U0AAA"]
    with pytest.raises(ValidationError, match="not Slack user ids: alice"):
        InviteArgs(channel="C1", users=["alice"])
    with pytest.raises(ValidationError):
        InviteArgs(channel="C1", users=[])


async def test_set_channel_topic_uses_the_channel_id_directly(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack({"conversations.setTopic": OK})
    proposal = tool_calls(("set_channel_topic", {"channel": "C0ABC", "topic": "Launch Friday"}))
    done, _ = await approve_all(agent_factory, thread_id, proposal, slack)
    assert slack.calls == [
        ("conversations.setTopic", {"channel": "C0ABC", "topic": "Launch Friday"})
    ]
    assert done.tool_results[0].status == "success"


async def test_slack_error_becomes_an_error_tool_message_and_the_model_is_told(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack({"chat.postMessage": {"ok": False, "error": "channel_not_found"}})
    proposal = tool_calls(("post_message", {"channel": "#gone", "text": "hi"}))
    call_id = proposal.tool_calls[0]["id"]
    done, model = await approve_all(agent_factory, thread_id, proposal, slack)
    assert slack.calls_of("chat.postMessage")
    [result] = done.tool_results
    assert (result.tool_call_id, result.status) == (call_id, "error")
    assert "channel_not_found" in result.content
    assert "chat.postMessage" in result.content
    assert done.reply == "Finished."
    [answer] = trailing_tool_messages(model.seen[1])
    assert answer.tool_call_id == call_id
    assert answer.status == "error"
    assert "channel_not_found" in str(answer.content)


async def test_slack_sdk_style_exception_is_reported_with_its_error(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    class Response:
        data: dict[str, Any] = {"ok": False, "error": "not_in_channel"}  # noqa: RUF012

    class SlackApiError(Exception):
        response = Response()

    class RaisingSlack(FakeSlack):
        def answer(self, api_method: str) -> Any:
            raise SlackApiError("The request to the Slack API failed.")

    slack = RaisingSlack()
    proposal = tool_calls(("post_message", {"channel": "#a", "text": "hi"}))
    done, _ = await approve_all(agent_factory, thread_id, proposal, slack)
    [result] = done.tool_results
    assert result.status == "error"
    assert "not_in_channel" in result.content


async def test_no_slack_workspace_in_the_context_is_an_error_result(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    proposal = tool_calls(("post_message", {"channel": "#a", "text": "hi"}))
    done, _ = await approve_all(agent_factory, thread_id, proposal, None)
    [result] = done.tool_results
    assert result.status == "error"
    assert "no Slack workspace is connected" in result.content


async def test_parallel_slack_calls_with_one_failure(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    slack = FakeSlack(
        {
            "chat.postMessage": [
                {"ok": True, "ts": "1.1"},
                {"ok": False, "error": "is_archived"},
            ]
        }
    )
    proposal = tool_calls(
        ("post_message", {"channel": "#a", "text": "one"}),
        ("post_message", {"channel": "#b", "text": "two"}),
    )
    done, model = await approve_all(agent_factory, thread_id, proposal, slack)
    assert sorted(body["channel"] for _, body in slack.calls_of("chat.postMessage")) == [
        "#a",
        "#b",
    ]
    assert sorted(r.status for r in done.tool_results) == ["error", "success"]
    answered = trailing_tool_messages(model.seen[1])
    assert sorted(m.tool_call_id for m in answered) == sorted(call_ids(proposal))


def test_builtin_registry_reviews_every_slack_tool() -> None:
    registry = build_registry()
    assert set(registry.names) == {
        "weather_search",
        "post_message",
        "create_channel",
        "set_channel_topic",
        "invite_users",
    }
    assert {registry.policy(name) for name in registry.names} == {"review"}
    assert registry.policy("not_a_tool") == "review"
    schema = registry.info("post_message")["args_schema"]
    assert set(schema["properties"]) == {"channel", "text"}  # runtime is not editable
    assert build_registry(auto_approve=("weather_search",)).policy("weather_search") == "auto"


def test_tool_module_policy_is_loaded(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_graph_tools_mod.py").write_text(
        "from langchain_core.tools import tool\n"
        "@tool\n"
        "def lookup(q: str) -> str:\n"
        '    """Look something up."""\n'
        "    return q\n"
        'REVIEW_POLICY = {"lookup": "auto"}\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    [entry] = load_tool_module("my_graph_tools_mod")
    assert (entry.tool.name, entry.policy) == ("lookup", "auto")
    assert build_registry(("my_graph_tools_mod",)).policy("lookup") == "auto"


async def test_a_replayed_post_finds_its_earlier_message_and_does_not_post_again(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    proposal = tool_calls(("post_message", {"channel": "#general", "text": "once"}))
    call_id = proposal.tool_calls[0]["id"]
    already = {
        "ts": "1700000000.000200",
        "metadata": {"event_type": IDEMPOTENCY_EVENT, "event_payload": {"tool_call_id": call_id}},
    }
    slack = FakeSlack(
        {
            "conversations.list": {"ok": True, "channels": [{"id": "C0GEN", "name": "general"}]},
            "conversations.history": {"ok": True, "messages": [{"ts": "1.0"}, already]},
            "chat.postMessage": {"ok": True, "ts": "9.9"},
        }
    )
    done, _ = await approve_all(agent_factory, thread_id, proposal, slack)
    assert slack.calls_of("chat.postMessage") == []
    assert slack.calls_of("conversations.history")[0][1]["channel"] == "C0GEN"
    assert "1700000000.000200" in done.tool_results[0].content


async def test_replays_of_create_and_invite_are_not_errors(
    agent_factory: AgentFactory, thread_id: str
) -> None:
    proposal = tool_calls(
        ("create_channel", {"name": "launch"}),
        ("invite_users", {"channel": "C0LAUNCH", "users": ["U0BOB"]}),
    )
    slack = FakeSlack(
        {
            "conversations.create": {"ok": False, "error": "name_taken"},
            "auth.test": {"ok": True, "user_id": "U0BOT"},
            "conversations.list": {"ok": True, "channels": [{"id": "C0LAUNCH", "name": "launch"}]},
            "conversations.info": {"ok": True, "channel": {"id": "C0LAUNCH", "creator": "U0BOT"}},
            "conversations.invite": {"ok": False, "error": "already_in_channel"},
        }
    )
    done, _ = await approve_all(agent_factory, thread_id, proposal, slack)
    assert [r.status for r in done.tool_results] == ["success", "success"]
    someone_elses = FakeSlack(
        {
            **slack.replies,
            "conversations.info": {"ok": True, "channel": {"id": "C0LAUNCH", "creator": "U0ALICE"}},
        }
    )
    other, _ = await approve_all(
        agent_factory,
        thread_id + "-b",
        tool_calls(("create_channel", {"name": "launch"})),
        someone_elses,
    )
    assert other.tool_results[0].status == "error"
    assert "name_taken" in other.tool_results[0].content


def test_every_read_method_the_tools_call_goes_as_query_parameters() -> None:
    """Slack reads no JSON body on read methods (the sandbox plays it: ``NO_JSON_BODY``): each
    one the tools call must be in ``READ_METHODS``, or its arguments are silently lost."""
    source = Path(slack_tools.__file__).read_text()
    called = set(re.findall(r'"([a-z]+\.[a-zA-Z.]+)"', source)) - {"."}
    assert called & NO_JSON_BODY <= slack_tools.READ_METHODS
