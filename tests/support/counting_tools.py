"""Tools that count their executions, so tests can prove something ran once (or never)."""

from __future__ import annotations

from langchain_core.tools import BaseTool, tool

from graph.tools.registry import ToolEntry, ToolRegistry, builtin_entries

RUNS: list[str] = []


@tool
def record_note(note: str) -> str:
    """Record a note (a test tool with a visible side effect)."""
    RUNS.append(note)
    return f"recorded: {note}"


def registry_with(*extra: BaseTool) -> ToolRegistry:
    return ToolRegistry([*builtin_entries(), *(ToolEntry(t) for t in (record_note, *extra))])
