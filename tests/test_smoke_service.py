"""The service end to end on the offline planner: the shortest path a user takes."""

from __future__ import annotations

from graph import AgentService, RunOutcome


async def test_weather_question_waits_for_review_then_runs(
    offline_agent: AgentService, thread_id: str
) -> None:
    started = await offline_agent.start_turn(thread_id, "what's the weather in sf?", user="U1")
    assert isinstance(started, RunOutcome)
    [review] = started.pending
    assert review.tool_name == "weather_search"
    assert review.args == {"city": "sf"}
    assert review.request["requested_by"] == "U1"

    done = await offline_agent.answer(thread_id, review.interrupt_id, {"action": "continue"})
    assert isinstance(done, RunOutcome)
    assert [r.status for r in done.tool_results] == ["success"]
    assert "demo data" in done.tool_results[0].content
    assert done.pending == []
    assert done.reply and "Done" in done.reply
