"""A test tool that takes a moment and a day (no built-in tool does), with a model proposing
it, for the date pickers' round trips."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from tests.support.scripted_model import ScriptedModel, tool_calls

REMINDERS: list[dict[str, Any]] = []
PROPOSED_AT = "2026-12-24T09:30:00+01:00"


class ReminderArgs(BaseModel):
    note: str = Field(description="What to remind of.")
    at: str = Field(description="When.", json_schema_extra={"format": "date-time"})
    day: str = Field(description="Which day it is about.", json_schema_extra={"format": "date"})


@tool(args_schema=ReminderArgs)
def set_reminder(note: str, at: str, day: str) -> str:
    """Set a reminder (a test tool: no built-in tool takes a date)."""
    REMINDERS.append({"note": note, "at": at, "day": day})
    return f"reminder set for {at} ({day})"


def reminder_model() -> ScriptedModel:
    return ScriptedModel(
        [
            tool_calls(("set_reminder", {"note": "ship", "at": PROPOSED_AT, "day": "2026-12-24"})),
            AIMessage(content="Reminder set."),
        ]
    )
