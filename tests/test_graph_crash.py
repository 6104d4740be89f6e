"""A process that dies between a step's work and its checkpoint: the work is on disk as pending
writes, the step is not committed. Finishing the run must commit it and go on, not give up
because no task is left to run."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from langgraph.types import Command
from pydantic import BaseModel

from graph import AgentContext
from graph.service import thread_config
from tests.conftest import AgentFactory
from tests.support.counting_tools import RUNS, registry_with
from tests.support.scripted_model import ScriptedModel, tool_calls


class ProcessDied(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


class NoteArgs(BaseModel):
    note: str


@tool(args_schema=NoteArgs)  # the schema names what a reviewer edits; runtime is injected
def note_requester(note: str, runtime: ToolRuntime[AgentContext, Any]) -> str:
    """Record a note with who asked for the run (the run's context)."""
    RUNS.append(f"{note} for {runtime.context.requester}")
    return f"recorded: {note}"


async def test_a_step_that_finished_but_was_not_committed_is_finished(
    agent_factory: AgentFactory,
    thread_id: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Finished with the caller's context (the tools see who asked), and logged."""
    RUNS.clear()
    model = ScriptedModel([tool_calls(("note_requester", {"note": "once"})), AIMessage("done")])
    async with agent_factory(model=model, registry=registry_with(note_requester)) as service:
        started = await service.start_turn(thread_id, "note it", user="U1")
        [review] = started.pending
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
        with caplog.at_level(logging.WARNING, logger="graph.service"):
            finished = await service.resume_interrupted(
                thread_id, context=AgentContext(requester="U9")
            )
        assert finished is not None
        assert [r.content for r in finished.tool_results] == ["recorded: once"]
        assert finished.reply == "done"
        assert RUNS == ["once for U9"]
        assert [r.getMessage() for r in caplog.records if r.name == "graph.service"] == [
            f"finishing the run of {thread_id} that stopped mid-way"
        ]
        assert await service.resume_interrupted(thread_id) is None  # at rest now
