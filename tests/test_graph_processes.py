"""Several OS processes sharing one PostgreSQL: a review is applied exactly once, and a thread
interrupted in one process can be finished by another.

The subprocesses are fresh Python interpreters that open the real service with the same
``DATABASE_URL`` and load the probe tool through ``AgentSettings(tool_modules=...)``. The probe
tool appends one line per execution to a file opened with ``O_APPEND``, so executions in any
process are counted in one place.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from graph.service import thread_config
from tests.conftest import AgentFactory
from tests.support.graph_helpers import (
    KILLED_AT_THE_MODEL_SCRIPT,
    answer_in_subprocess,
    outcome,
    probe_runs,
    state_messages,
    subprocess_result,
    write_probe_module,
)
from tests.support.scripted_model import ScriptedModel, tool_calls


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A uniquely named tool module under tmp_path, importable here and in subprocesses."""
    module = f"probe_tools_{uuid.uuid4().hex[:10]}"
    log_path = tmp_path / "executions.log"
    write_probe_module(tmp_path, module, log_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return module, log_path


async def wait_for_files(paths: list[Path], processes: list[asyncio.subprocess.Process]) -> None:
    """Wait until every subprocess has written its ready file (or one of them died)."""
    for _ in range(6000):
        if all(path.exists() for path in paths):
            return
        for process in processes:
            if process.returncode is not None:
                _, err = await process.communicate()
                raise AssertionError(f"a subprocess exited early:\n{err.decode()}")
        await asyncio.sleep(0.02)
    raise AssertionError("the subprocesses never became ready")


async def test_two_processes_answering_one_review_run_the_tool_once(
    agent_factory: AgentFactory,
    database_url: str,
    thread_id: str,
    tmp_path: Path,
    probe: tuple[str, Path],
) -> None:
    module, log_path = probe
    model = ScriptedModel([tool_calls(("probe_action", {"label": "deploy"}))])
    async with agent_factory(model=model, tool_modules=(module,)) as service:
        started = outcome(await service.start_turn(thread_id, "deploy please"))
        [review] = started.pending
        assert review.tool_name == "probe_action"

        go_file = tmp_path / "go"
        ready_files = [tmp_path / f"ready-{n}" for n in range(2)]
        processes = [
            await answer_in_subprocess(
                script_dir=tmp_path,
                database_url=database_url,
                python_path=[tmp_path],
                spec={
                    "thread_id": thread_id,
                    "interrupt_id": review.interrupt_id,
                    "decision": {"action": "continue", "by": f"U_PROC_{n}"},
                    "tool_modules": [module],
                    "reply": f"done by process {n}",
                    "ready_file": str(ready_files[n]),
                    "go_file": str(go_file),
                },
            )
            for n in range(2)
        ]
        await wait_for_files(ready_files, processes)
        # Both saw the review pending before either answered.
        for ready in ready_files:
            assert json.loads(ready.read_text()) == [review.interrupt_id]
        go_file.write_text("go")
        results = [await subprocess_result(process) for process in processes]

        winners = [r for r in results if r["kind"] == "ran"]
        losers = [r for r in results if r["kind"] == "refused"]
        assert len(winners) == 1, results
        assert len(losers) == 1, results
        winner, loser = winners[0], losers[0]
        assert loser["reason"] == "not_pending"
        winner_index = 0 if winner["reply"] == "done by process 0" else 1
        assert loser["decided_by"] == f"U_PROC_{winner_index}"
        assert [r["status"] for r in winner["tool_results"]] == ["success"]
        assert winner["model_calls"] == 1

        runs = probe_runs(log_path)
        assert len(runs) == 1, runs
        assert runs[0]["label"] == "deploy"

        # The checkpoint history has one ending, visible from this process too.
        messages = await state_messages(service, thread_id)
        assert [type(m).__name__ for m in messages] == [
            "HumanMessage",
            "AIMessage",
            "ToolMessage",
            "AIMessage",
        ]
        assert messages[-1].content == winner["reply"]
        assert await service.pending_reviews(thread_id) == []


async def test_two_services_in_one_process_answering_at_once_run_the_tool_once(
    agent_factory: AgentFactory, thread_id: str, probe: tuple[str, Path]
) -> None:
    """Two services (two pools, two lease holders) racing: the database lease decides."""
    module, log_path = probe
    first_model = ScriptedModel(
        [tool_calls(("probe_action", {"label": "x"})), AIMessage(content="one")]
    )
    second_model = ScriptedModel([AIMessage(content="two")])
    async with (
        agent_factory(model=first_model, tool_modules=(module,)) as first,
        agent_factory(model=second_model, tool_modules=(module,)) as second,
    ):
        [review] = outcome(await first.start_turn(thread_id, "x")).pending
        results = await asyncio.gather(
            *(
                service.answer(thread_id, review.interrupt_id, {"action": "continue"})
                for service in (first, second, first, second, first, second)
            )
        )
        ran = [r for r in results if not hasattr(r, "reason")]
        assert len(ran) == 1
        assert all(getattr(r, "reason", None) == "not_pending" for r in results if r not in ran)
        assert len(probe_runs(log_path)) == 1


async def test_a_fresh_process_resumes_a_thread_interrupted_here(
    agent_factory: AgentFactory,
    database_url: str,
    thread_id: str,
    tmp_path: Path,
    probe: tuple[str, Path],
) -> None:
    module, log_path = probe
    model = ScriptedModel([tool_calls(("probe_action", {"label": "ship it"}))])
    async with agent_factory(model=model, tool_modules=(module,)) as service:
        [review] = outcome(await service.start_turn(thread_id, "ship it")).pending
        call_id = review.tool_call_id

    # This process's service is closed; a new process picks the thread up from PostgreSQL.
    process = await answer_in_subprocess(
        script_dir=tmp_path,
        database_url=database_url,
        python_path=[tmp_path],
        spec={
            "thread_id": thread_id,
            "interrupt_id": review.interrupt_id,
            "decision": {"action": "update", "data": {"label": "ship it now"}, "by": "U_OTHER"},
            "tool_modules": [module],
            "reply": "Shipped from the other process.",
        },
    )
    result = await subprocess_result(process)
    assert result["kind"] == "ran"
    assert result["reply"] == "Shipped from the other process."
    assert result["pending"] == 0
    [tool_result] = result["tool_results"]
    assert tool_result["tool_call_id"] == call_id
    assert tool_result["status"] == "success"

    [run] = probe_runs(log_path)
    assert run["label"] == "ship it now"
    assert str(run["pid"]) in tool_result["content"]

    # Visible from a newly opened service here.
    async with agent_factory(model=ScriptedModel([]), tool_modules=(module,)) as service:
        snapshot = await service.graph.aget_state(thread_config(thread_id))
        assert snapshot.interrupts == ()
        messages = snapshot.values["messages"]
        assert isinstance(messages[1], AIMessage)
        assert messages[1].tool_calls[0]["args"] == {"label": "ship it now"}
        assert isinstance(messages[2], ToolMessage)
        assert messages[2].tool_call_id == call_id
        assert messages[-1].content == "Shipped from the other process."
        assert snapshot.values["decisions"][call_id]["by"] == "U_OTHER"
        late = await service.answer(thread_id, review.interrupt_id, {"action": "continue"})
        assert getattr(late, "reason", None) == "not_pending"
        previous = getattr(late, "previous", None)
        assert previous is not None
        assert previous.decided_by == "U_OTHER"
        assert previous.action == "update"


async def test_a_process_killed_after_the_tool_ran_leaves_that_step_on_disk(
    agent_factory: AgentFactory,
    database_url: str,
    thread_id: str,
    tmp_path: Path,
    probe: tuple[str, Path],
) -> None:
    """A run saves each step before the next starts (``durability="sync"`` in ``_run``): a
    process SIGKILLed as the model is called after the tool leaves the tool's step committed.

    The other process holds that step's checkpoint save back (a slow disk) and blocks at the
    model call. Saved in the background (``async``, LangGraph's default) or at the end
    (``exit``), the model is called while the save is held and the kill loses the step: the
    last checkpoint is the review's (nothing is next, the tool's result only a pending write:
    the trap ``test_graph_crash.py`` finishes), or the proposal's. The hold only gives the next
    step time to start first; the run as written waits for the save however long it takes.
    """
    module, log_path = probe
    model = ScriptedModel([tool_calls(("probe_action", {"label": "deploy"}))])
    async with agent_factory(model=model, tool_modules=(module,)) as service:
        [review] = outcome(await service.start_turn(thread_id, "deploy please")).pending
        process = await answer_in_subprocess(
            script_dir=tmp_path,
            database_url=database_url,
            python_path=[tmp_path],
            spec={
                "thread_id": thread_id,
                "interrupt_id": review.interrupt_id,
                "decision": {"action": "continue", "by": "U_KILLED"},
                "tool_modules": [module],
                "tool_log": str(log_path),
                "hold_seconds": 1.0,
            },
            script_text=KILLED_AT_THE_MODEL_SCRIPT,
        )
        try:
            assert process.stdout is not None
            said = await asyncio.wait_for(process.stdout.readline(), 120)
        finally:
            process.kill()  # SIGKILL: nothing in the child runs after this
            _, err = await process.communicate()
        assert said == b"MODEL CALLED\n", err.decode()
        assert [run["label"] for run in probe_runs(log_path)] == ["deploy"]

        snapshot = await service.graph.aget_state(thread_config(thread_id))
        assert snapshot.next == ("call_llm",)  # the tool's step committed, the model's due
        assert [type(m).__name__ for m in snapshot.values["messages"]] == [
            "HumanMessage",
            "AIMessage",
            "ToolMessage",
        ]
        assert snapshot.values["decisions"][review.tool_call_id]["by"] == "U_KILLED"
