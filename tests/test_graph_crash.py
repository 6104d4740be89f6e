"""A process that dies between a step's work and its checkpoint: the work is on disk as pending
writes, the step is not committed. Finishing the run must commit it and go on, not give up
because no task is left to run."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.types import Command

from graph.service import thread_config
from tests.conftest import AgentFactory
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls


class ProcessDied(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


async def test_a_step_that_finished_but_was_not_committed_is_finished(
    agent_factory: AgentFactory, thread_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    RUNS.clear()
    model = ScriptedModel([tool_calls(("record_note", {"note": "once"})), AIMessage("done")])
    async with agent_factory(model=model, registry=registry_with()) as service:
        started = await service.start_turn(thread_id, "note it", user="U1")
        [review] = started.pending  # type: ignore[union-attr]
        saver: Any = service.graph.checkpointer
        original = saver.aput

        async def die_before_committing(*args: Any, **kwargs: Any) -> Any:
            raise ProcessDied

        monkeypatch.setattr(saver, "aput", die_before_committing)
        with pytest.raises(ProcessDied):
            await service.graph.ainvoke(
                Command(resume={review.interrupt_id: {"action": "continue", "by": "U2"}}),
                thread_config(thread_id),
                durability="sync",
            )
        monkeypatch.setattr(saver, "aput", original)

        snapshot = await service.graph.aget_state(thread_config(thread_id))
        assert not snapshot.interrupts and not snapshot.next and snapshot.tasks  # the trap
        assert RUNS == []
        finished = await service.resume_interrupted(thread_id)
        assert finished is not None
        assert [r.content for r in finished.tool_results] == ["recorded: once"]
        assert finished.reply == "done"
        assert RUNS == ["once"]
        assert await service.resume_interrupted(thread_id) is None  # at rest now
