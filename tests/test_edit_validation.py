"""What a decision may carry before anything runs (``graph.review``): its shape, the edited
arguments against the tool's schema (a pydantic model or a plain JSON schema), NUL characters,
and what the reviewer is shown. Pure: no database, no graph; every refusal is checked for the
field it names and the words it says, since the Slack modal shows both next to the field.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, InjectedToolArg, StructuredTool
from pydantic import BaseModel, field_validator

from graph.review import (
    MAX_DECISION_BYTES,
    InvalidDecision,
    apply_edits,
    as_seed_decision,
    nul_path,
    parse_decision,
    refuse_nul,
    review_description,
    review_request,
    validate_args,
    validate_json_args,
)
from graph.types import ToolInfo


def refused(call: Any, *args: Any) -> InvalidDecision:
    with pytest.raises(InvalidDecision) as error:
        call(*args)
    return error.value


# -- a decision's shape ---------------------------------------------------------------------


def test_each_action_is_normalised_into_its_record() -> None:
    digest = "sha256:" + "a" * 64
    assert parse_decision({"action": "continue", "by": 7, "digest": digest}, "c1") == {
        "tool_call_id": "c1",
        "action": "continue",
        "args": None,
        "feedback": None,
        "by": "7",
        "digest": digest,
    }
    assert parse_decision({"action": "continue"}, "c1")["by"] is None
    edit = parse_decision(
        {"action": "update", "data": {"city": "LA"}, "digest": digest, "by": "U2"}, "c2"
    )
    assert edit == {
        "tool_call_id": "c2",
        "action": "update",
        "args": {"city": "LA"},
        "feedback": None,
        "by": "U2",
        "digest": digest,
    }
    words = parse_decision({"action": "feedback", "data": "  not now  ", "by": "U1"}, "c3")
    assert words == {
        "tool_call_id": "c3",
        "action": "feedback",
        "args": None,
        "feedback": "not now",
        "by": "U1",
    }


def test_a_decision_of_the_wrong_shape_is_refused_in_words() -> None:
    cases: list[tuple[Any, str]] = [
        (["continue"], "a decision must be an object with an 'action'"),
        ({"action": "run"}, "unknown action 'run'; use one of: continue, update, feedback"),
        ({}, "unknown action None; use one of: continue, update, feedback"),
        ({"action": "continue", "digest": 1}, "'digest' must be a string (see graph.digest)"),
        ({"action": "update"}, "'update' needs 'data': the new arguments"),
        ({"action": "update", "data": "LA"}, "'update' data must be an object of arguments"),
        ({"action": "feedback"}, "'feedback' needs 'data': the words to send back to the agent"),
        ({"action": "feedback", "data": " \n"}, "'feedback' needs 'data': the words to send"),
        ({"action": "feedback", "data": ["no"]}, "'feedback' needs 'data': the words to send"),
        ({"action": "feedback", "data": "no\x00"}, "the feedback contains a NUL character"),
    ]
    for decision, words in cases:
        error = refused(parse_decision, decision, "c1")
        assert str(error).startswith(words), (decision, str(error))
        assert error.field is None


def test_a_decision_may_be_at_most_the_limit() -> None:
    """The size is the decision's JSON, whatever it holds (``default=str`` for the rest)."""
    padding = MAX_DECISION_BYTES - len('{"action": "continue", "by": ""}')
    assert parse_decision({"action": "continue", "by": "x" * padding}, "c1")["by"]
    error = refused(parse_decision, {"action": "continue", "by": "x" * (padding + 1)}, "c1")
    assert str(error) == "a decision may be at most 100 KB"
    assert parse_decision({"action": "continue", "by": object()}, "c1")["by"]


def test_an_edit_with_a_nul_character_is_refused_naming_the_argument() -> None:
    error = refused(parse_decision, {"action": "update", "data": {"note": "a\x00"}}, "c1")
    assert str(error) == (
        "note: contains a NUL character (U+0000), which cannot be stored; remove it"
    )
    assert error.field == "note"


# -- NUL characters ---------------------------------------------------------------------------


def test_a_nul_character_is_found_wherever_it_hides() -> None:
    assert nul_path("a\x00") == "(value)"
    assert nul_path("plain") is None
    assert nul_path({"a": "x", "b": {"c": ["ok", "n\x00"]}}) == "b.c[1]"
    assert nul_path({"k\x00": "v"}) == "k\x00"
    assert nul_path({"a": {"k\x00": 1}}) == "a.k\x00"
    assert nul_path(["x", ("\x00", "y")]) == "[1][0]"
    assert nul_path({1: "\x00"}) == "1"
    assert nul_path({"a": ["fine", {"b": 2}], "c": 3}) is None
    assert nul_path({"a": "fine", "b": "\x00"}) == "b"


def test_refusing_a_nul_names_the_top_argument_of_a_mapping_only() -> None:
    error = refused(refuse_nul, {"users": [{"name": "a\x00"}]})
    assert str(error).startswith("users[0].name: contains a NUL character")
    assert error.field == "users"
    error = refused(refuse_nul, {"user": {"name": "a\x00"}})
    assert str(error).startswith("user.name: contains") and error.field == "user"
    error = refused(refuse_nul, ["\x00"])
    assert str(error).startswith("[0]: contains a NUL character") and error.field is None
    refuse_nul({"fine": ["x"]})


# -- edits against a tool's pydantic schema -----------------------------------------------


class Booking(BaseModel):
    hotel: str
    nights: int = 1
    session: Annotated[str, InjectedToolArg]

    @field_validator("hotel")
    @classmethod
    def known_hotel(cls, value: str) -> str:
        if value.startswith("?"):
            raise ValueError("no such hotel")
        return value


def book(hotel: str, session: Annotated[str, InjectedToolArg], nights: int = 1) -> str:
    """Book a hotel."""
    return f"{hotel} {nights}"


BOOK = StructuredTool.from_function(book, name="book_hotel", args_schema=Booking)


def test_an_edit_is_checked_against_the_tools_own_validators() -> None:
    """The full ``args_schema`` (with its validators) checks the edit; its complaints about
    the injected ``session``, which no reviewer supplies, are not the reviewer's to fix."""
    assert validate_args(BOOK, {"hotel": "Ritz", "nights": 2}) == {"hotel": "Ritz", "nights": 2}
    error = refused(validate_args, BOOK, {"hotel": "?Ritz"})
    assert str(error) == "hotel: no such hotel" and error.field == "hotel"
    error = refused(validate_args, BOOK, {"hotel": "Ritz", "nights": "many"})
    assert error.field == "nights"
    assert str(error).startswith("nights: Input should be a valid integer")
    error = refused(validate_args, BOOK, {"hotel": "Ritz", "nigths": 2})
    assert str(error) == "nigths: unknown field for book_hotel" and error.field == "nigths"
    error = refused(validate_args, BOOK, {"hotel": "Ritz", "zz": 1, "aa": 2})
    assert error.field == "aa"  # the first, in order


def test_a_nul_character_in_an_edit_is_refused_before_the_schema_sees_it() -> None:
    error = refused(validate_args, BOOK, {"hotel": "Ri\x00tz"})
    assert str(error).startswith("hotel: contains a NUL character") and error.field == "hotel"


class Bare(BaseTool):
    """A tool with no ``args_schema`` at all: langchain-core derives an empty model for the
    call, and the edit is checked against that."""

    name: str = "bare"
    description: str = "Takes nothing."

    def _run(self, **kwargs: Any) -> str:
        return "ran"


def test_a_tool_without_an_args_schema_takes_no_arguments() -> None:
    assert validate_args(Bare(), {}) == {}
    error = refused(validate_args, Bare(), {"x": 1})
    assert str(error) == "x: unknown field for bare" and error.field == "x"


def test_required_text_left_blank_is_refused_and_optional_text_is_not() -> None:
    for blank in ("", "   "):
        error = refused(validate_args, BOOK, {"hotel": blank})
        assert str(error) == "hotel: must not be blank" and error.field == "hotel"
        optional = {"title": "Door", "priority": 1, "note": blank}
        assert validate_json_args("t", TICKET, optional) == optional


class Nested(BaseModel):
    rooms: list[int]


def rooms(rooms: list[int]) -> str:
    """Rooms."""
    return str(rooms)


ROOMS = StructuredTool.from_function(rooms, name="rooms", args_schema=Nested)


def test_a_nested_fault_is_named_by_its_path() -> None:
    error = refused(validate_args, ROOMS, {"rooms": [1, "x"]})
    assert str(error).startswith("rooms.1: Input should be a valid integer")
    assert error.field == "rooms"


# -- edits against a plain JSON schema (MCP tools, remote graphs) --------------------------

TICKET: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": "string"},
    },
    "required": ["title", "priority"],
}


def test_json_schema_edits_name_the_first_field_at_fault() -> None:
    good = {"title": "Door", "priority": 4}
    assert validate_json_args("tickets__create", TICKET, good) == good
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({**good, "colour": "red"}, "colour: unknown field for tickets__create", "colour"),
        ({"title": "Door"}, "priority: Field required", "priority"),
        ({"priority": 2}, "title: Field required", "title"),
        ({"title": " ", "priority": 2}, "title: must not be blank", "title"),
        ({**good, "priority": 9}, "priority: 9 is greater than the maximum of 5", "priority"),
        ({**good, "tags": ["a", 3]}, "tags.1: 3 is not of type 'string'", "tags"),
        ({**good, "note": "\x00"}, "note: contains a NUL character (U+0000)", "note"),
    ]
    for args, words, field in cases:
        error = refused(validate_json_args, "tickets__create", TICKET, args)
        assert str(error).startswith(words), (args, str(error))
        assert error.field == field


def test_the_first_fault_is_the_one_earliest_in_the_arguments() -> None:
    both = {"title": 5, "priority": 0}
    error = refused(validate_json_args, "t", TICKET, both)
    assert error.field == "priority"  # sorted by path: "priority" < "title"
    assert str(error) == "priority: 0 is less than the minimum of 1"


def test_a_fault_of_the_whole_arguments_names_no_field() -> None:
    schema = {"type": "object", "minProperties": 2}
    error = refused(validate_json_args, "t", schema, {"a": 1})
    assert str(error) == "(arguments): {'a': 1} does not have enough properties"
    assert error.field is None


def test_a_schema_without_properties_accepts_any_name_and_a_broken_schema_only_the_basics() -> None:
    assert validate_json_args("t", {"type": "object"}, {"anything": 1}) == {"anything": 1}
    broken = {"type": "object", "properties": {"n": {"type": "integer"}}, "minimum": "x"}
    assert validate_json_args("t", broken, {"n": "not checked"}) == {"n": "not checked"}
    error = refused(validate_json_args, "t", broken, {"m": 1})
    assert error.field == "m"


def test_the_schemas_own_draft_is_used() -> None:
    """Draft 4's boolean ``exclusiveMaximum`` means the bound itself is refused; under 2020-12
    (the default) a boolean there is a broken schema."""
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer", "maximum": 5, "exclusiveMaximum": True}},
    }
    error = refused(validate_json_args, "t", draft4, {"n": 5})
    assert error.field == "n"
    assert validate_json_args("t", draft4, {"n": 4}) == {"n": 4}


def json_tool(schema: dict[str, Any]) -> BaseTool:
    def run(**kwargs: Any) -> str:
        return "ok"

    return StructuredTool.from_function(
        run, name="tickets__create", description="Create a ticket.", args_schema=schema
    )


def test_a_tool_known_by_its_json_schema_is_checked_against_it() -> None:
    tool = json_tool(TICKET)
    assert validate_args(tool, {"title": "Door", "priority": 1}) == {"title": "Door", "priority": 1}
    error = refused(validate_args, tool, {"title": "Door", "priority": 1, "x": 1})
    assert str(error) == "x: unknown field for tickets__create"


# -- what the reviewer sees ----------------------------------------------------------------

INFO: ToolInfo = {"name": "tickets__create", "description": "Create a ticket.", "args_schema": {}}


def test_the_description_says_what_runs_and_why_an_answer_was_not_applied() -> None:
    assert review_description(INFO) == (
        "**Is this correct?** The agent wants to run `tickets__create`.\n\nCreate a ticket."
    )
    shown: ToolInfo = {**INFO, "display_name": "tickets.create", "description": ""}
    assert review_description(shown).endswith("The agent wants to run `tickets.create`.")
    assert "\n\n" not in review_description(shown)
    why = review_description(INFO, InvalidDecision("title: must not be blank"))
    assert why.endswith(
        "Create a ticket.\n\n**The previous answer could not be applied:** title: must not be blank"
    )


def test_a_request_carries_the_call_the_inbox_fields_and_the_last_error() -> None:
    call = {"name": "tickets__create", "args": {"title": "Door"}, "id": "c1"}
    request = review_request(call, INFO, "U1", ("U1", "U2"))  # type: ignore[arg-type]
    assert request["question"] == "Is this correct?"
    assert request["tool_call"] == call and request["tool"] == INFO
    assert request["requested_by"] == "U1" and request["requesters"] == ["U1", "U2"]
    assert request["action_request"] == {"action": "tickets__create", "args": {"title": "Door"}}
    assert request["config"] == {
        "allow_accept": True,
        "allow_edit": True,
        "allow_respond": True,
        "allow_ignore": True,
    }
    assert request["description"] == review_description(INFO)
    assert "error" not in request and "error_argument" not in request
    assert review_request(call, INFO, None)["requesters"] == []
    error = InvalidDecision("title: must not be blank", field="title")
    again = review_request(call, INFO, "U1", error=error)
    assert again["error"] == "title: must not be blank"
    assert again["error_argument"] == "title"
    assert again["description"] == review_description(INFO, error)
    unnamed = review_request(call, INFO, "U1", error=InvalidDecision("no"))
    assert unnamed["error"] == "no" and "error_argument" not in unnamed


def test_any_vocabularys_answer_becomes_the_seeds_or_is_refused() -> None:
    assert as_seed_decision({"action": "continue"}, "t") == {"action": "continue"}
    error = refused(as_seed_decision, 42, "t")
    assert str(error).startswith("a decision must be the seed's {'action': ...}, Agent Inbox's")
    assert error.field is None
    inbox_edit = [{"type": "edit", "args": {"action": "book", "args": {"hotel": "Z"}}}]
    assert as_seed_decision(inbox_edit, "book") == {"action": "update", "data": {"hotel": "Z"}}
    error = refused(as_seed_decision, inbox_edit, "weather")
    assert str(error) == (
        "an edit cannot change the tool: this review is about weather, the edit names book"
    )


# -- applying edits --------------------------------------------------------------------------


def test_edits_replace_the_arguments_in_the_calls_and_in_claudes_blocks() -> None:
    message = AIMessage(
        id="m1",
        content=[
            {"type": "text", "text": "Booking."},
            {"type": "tool_use", "id": "c1", "name": "book", "input": {"hotel": "A"}},
            {"type": "tool_use", "id": "c2", "name": "book", "input": {"hotel": "B"}},
            "loose text",
        ],
        tool_calls=[
            {"name": "book", "args": {"hotel": "A"}, "id": "c1", "type": "tool_call"},
            {"name": "book", "args": {"hotel": "B"}, "id": "c2", "type": "tool_call"},
        ],
    )

    def record(call_id: str, action: str, args: Any) -> Any:
        return {"tool_call_id": call_id, "action": action, "args": args, "feedback": None}

    edited = apply_edits(message, {"c1": record("c1", "update", {"hotel": "Z"})})
    assert edited.id == "m1"
    assert [c["args"] for c in edited.tool_calls] == [{"hotel": "Z"}, {"hotel": "B"}]
    assert [c["id"] for c in edited.tool_calls] == ["c1", "c2"]
    assert edited.content[0] == {"type": "text", "text": "Booking."}
    assert edited.content[1] == {
        "type": "tool_use",
        "id": "c1",
        "name": "book",
        "input": {"hotel": "Z"},
    }
    assert edited.content[2]["input"] == {"hotel": "B"}  # type: ignore[index]
    assert edited.content[3] == "loose text"
    untouched = {
        "c1": record("c1", "continue", None),
        "c2": record("c2", "update", None),
    }
    assert apply_edits(message, untouched) is message
    plain = AIMessage(
        content="text",
        tool_calls=[{"name": "b", "args": {"x": 1}, "id": "c1", "type": "tool_call"}],
    )
    assert apply_edits(plain, {"c1": record("c1", "update", {"x": 2})}).content == "text"
    not_a_block = AIMessage(
        content=[{"type": "text", "id": "c1", "text": "t"}],
        tool_calls=[{"name": "b", "args": {"x": 1}, "id": "c1", "type": "tool_call"}],
    )
    kept = apply_edits(not_a_block, {"c1": record("c1", "update", {"x": 2})})
    assert kept.content == [{"type": "text", "id": "c1", "text": "t"}]
