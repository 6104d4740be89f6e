"""The offline planner (no ANTHROPIC_API_KEY): which phrasings become which tool calls, how it
treats feedback, and that it is honest about being offline. Run through the real service too."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from graph import AgentService
from graph.offline import OFFLINE_HELP, OfflinePlanner, plan
from graph.tools.registry import build_registry
from graph.tools.weather import demo_weather
from tests.support.graph_helpers import outcome


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what's the weather in sf?", [("weather_search", {"city": "sf"})]),
        ("What's the weather like in Paris?", [("weather_search", {"city": "Paris"})]),
        ("weather for Tokyo", [("weather_search", {"city": "Tokyo"})]),
        (
            "what's the weather in Paris and Oslo?",
            [("weather_search", {"city": "Paris"}), ("weather_search", {"city": "Oslo"})],
        ),
        ("<@U0BOT> what's the weather in Lima?", [("weather_search", {"city": "Lima"})]),
        (
            'post "hello team" to #general',
            [("post_message", {"channel": "#general", "text": "hello team"})],
        ),
        (
            "send “ship it” in <#C0123|general>",
            [("post_message", {"channel": "<#C0123|general>", "text": "ship it"})],
        ),
        ("create channel #launch-plan", [("create_channel", {"name": "launch-plan"})]),
        (
            "create a new private channel called secret-ops",
            [("create_channel", {"name": "secret-ops", "is_private": True})],
        ),
        (
            "set the topic of #general to Launch on Friday",
            [("set_channel_topic", {"channel": "#general", "topic": "Launch on Friday"})],
        ),
        (
            "invite <@U123ABC> <@U456DEF|bob> to #general",
            [("invite_users", {"channel": "#general", "users": ["U123ABC", "U456DEF"]})],
        ),
        ("invite @alice to #general", []),
        ("tell me a joke", []),
        ("", []),
    ],
)
def test_phrasings_map_to_tool_calls(text: str, expected: list[tuple[str, dict[str, Any]]]) -> None:
    assert plan(text) == expected


async def test_planner_proposes_only_bound_tools_with_stable_ids() -> None:
    registry = build_registry()
    planner = OfflinePlanner().bind_tools(registry.tools)
    question = [HumanMessage(content="what's the weather in Paris and Oslo?")]
    first = await planner.ainvoke(question)
    again = await planner.ainvoke(question)
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [
        ("weather_search", {"city": "Paris"}),
        ("weather_search", {"city": "Oslo"}),
    ]
    ids = [c["id"] for c in first.tool_calls]
    assert len(set(ids)) == 2
    assert all(str(i).startswith("toolu_") for i in ids)
    assert ids == [c["id"] for c in again.tool_calls]

    unbound = await OfflinePlanner().ainvoke(question)
    assert unbound.tool_calls == []
    assert unbound.content == OFFLINE_HELP


async def test_planner_reports_tool_results() -> None:
    planner = OfflinePlanner(build_registry().tools)
    call = AIMessage(
        content="",
        tool_calls=[{"name": "weather_search", "args": {"city": "Oslo"}, "id": "t1"}],
    )
    reply = await planner.ainvoke(
        [
            HumanMessage(content="weather in Oslo"),
            call,
            ToolMessage(content="rainy", tool_call_id="t1", name="weather_search"),
        ]
    )
    assert reply.tool_calls == []
    assert reply.content == "Done.\n• `weather_search`: rainy"


async def test_unknown_text_gets_the_honest_offline_help(
    offline_agent: AgentService, thread_id: str
) -> None:
    result = outcome(await offline_agent.start_turn(thread_id, "tell me a joke"))
    assert result.pending == []
    assert result.tool_results == []
    assert result.reply == OFFLINE_HELP
    assert "ANTHROPIC_API_KEY" in OFFLINE_HELP
    assert "offline" in OFFLINE_HELP


@pytest.mark.parametrize(
    ("feedback", "city"),
    [
        ("use San Francisco, USA", "San Francisco, USA"),
        ('No, please use "San Francisco, USA" instead.', "San Francisco, USA"),
        ("what's the weather in Rome?", "Rome"),
        # the seed's own words, "sf" read through the demo gazetteer
        ("User requested changes: use <city, country> format for location", "San Francisco, USA"),
    ],
)
async def test_feedback_that_says_what_to_use_re_proposes(
    offline_agent: AgentService, thread_id: str, feedback: str, city: str
) -> None:
    [review] = outcome(
        await offline_agent.start_turn(thread_id, "what's the weather in sf?")
    ).pending
    again = outcome(
        await offline_agent.answer(
            thread_id, review.interrupt_id, {"action": "feedback", "data": feedback}
        )
    )
    [declined] = again.tool_results
    assert (declined.tool_call_id, declined.status) == (review.tool_call_id, "declined")
    [retry] = again.pending
    assert retry.tool_name == "weather_search"
    assert retry.args == {"city": city}
    assert retry.tool_call_id != review.tool_call_id
    assert again.reply is None

    done = outcome(
        await offline_agent.answer(thread_id, retry.interrupt_id, {"action": "continue"})
    )
    assert [r.content for r in done.tool_results] == [demo_weather(city)]
    assert done.reply is not None
    assert demo_weather(city) in done.reply


async def test_unusable_feedback_is_explained(offline_agent: AgentService, thread_id: str) -> None:
    [review] = outcome(
        await offline_agent.start_turn(thread_id, "what's the weather in sf?")
    ).pending
    result = outcome(
        await offline_agent.answer(
            thread_id, review.interrupt_id, {"action": "feedback", "data": "hmm, not sure"}
        )
    )
    assert result.pending == []
    assert result.reply is not None
    assert "did not run `weather_search`" in result.reply
    assert "offline" in result.reply
    assert "Edit" in result.reply


async def test_use_x_on_a_call_with_two_text_arguments_is_explained(
    offline_agent: AgentService, thread_id: str
) -> None:
    """'use X' is ambiguous when the call has two string arguments; it must not guess."""
    [review] = outcome(
        await offline_agent.start_turn(thread_id, 'post "hello" to #general')
    ).pending
    assert review.args == {"channel": "#general", "text": "hello"}
    result = outcome(
        await offline_agent.answer(
            thread_id, review.interrupt_id, {"action": "feedback", "data": "use #random"}
        )
    )
    assert result.pending == []
    assert result.reply is not None
    assert "did not run `post_message`" in result.reply


async def test_offline_parallel_weather_runs_both_after_review(
    offline_agent: AgentService, thread_id: str
) -> None:
    started = outcome(
        await offline_agent.start_turn(thread_id, "what's the weather in Paris and Oslo?")
    )
    assert sorted(r.args["city"] for r in started.pending) == ["Oslo", "Paris"]
    for review in started.pending:
        result = outcome(
            await offline_agent.answer(thread_id, review.interrupt_id, {"action": "continue"})
        )
    assert sorted(r.content for r in result.tool_results) == sorted(
        [demo_weather("Paris"), demo_weather("Oslo")]
    )
    assert result.reply is not None
    assert result.reply.startswith("Done.")


def test_the_seed_s_format_feedback_on_a_city_the_gazetteer_does_not_know() -> None:
    """Not guessed: the planner says what it can do (and never proposes the instruction itself
    as the city, which the old "use X" reading did)."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from graph.offline import OfflinePlanner
    from graph.tools.weather import weather_search

    call = {"name": "weather_search", "args": {"city": "Xyzzy"}, "id": "t1", "type": "tool_call"}
    feedback = "User requested changes: use <city, country> format for location"
    reply = OfflinePlanner([weather_search]).invoke(
        [
            HumanMessage("what's the weather in Xyzzy?"),
            AIMessage("", tool_calls=[call]),
            ToolMessage(
                "Not run.",
                tool_call_id="t1",
                artifact={"review_action": "feedback", "feedback": feedback},
            ),
        ]
    )
    assert not reply.tool_calls and "did not run" in str(reply.content)
