"""Arguments as people read them (bot.readable) and Slack's pickers in Edit (bot.pickers): pure,
no Slack, no database. Every readable form keeps the exact value beside it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot import blocks, modals, pickers, readable
from bot.blocks import Progress, Verdict
from bot.readable import Names, readable_value, wanted_ids
from graph import ReviewRequest
from graph.tools.registry import build_registry
from sandbox import blocks as sandbox_blocks
from sandbox import modal_state
from tests.support.block_kit import assert_valid_blocks, assert_valid_view

REGISTRY = build_registry()
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NAMES = Names(users={"U0BOB": "Bob Lee", "U0CAROL": "Carol"}, channels={"C0GEN": "general"})


def request_for(tool: str, args: dict[str, Any]) -> ReviewRequest:
    return ReviewRequest(
        question="Is this correct?",
        tool_call={"name": tool, "args": args, "id": "toolu_1"},
        tool=REGISTRY.info(tool),
        requested_by="U0ALICE",
    )


def dated_request(args: dict[str, Any], kind: str = "string") -> ReviewRequest:
    """A test tool with a moment, a day and a link (no built-in tool has one)."""
    request = request_for("weather_search", args)
    request["tool"]["args_schema"] = {
        "type": "object",
        "properties": {
            "at": {"type": kind, "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "page": {"type": "string", "format": "uri"},
            "owner": {"anyOf": [{"type": "string", "format": "slack-user"}, {"type": "null"}]},
            "rooms": {"type": "array", "items": {"type": "string", "format": "slack-channel"}},
        },
        "required": ["at"],
    }
    return request


def card_text(body: list[dict[str, Any]]) -> str:
    return "\n".join(b["text"]["text"] for b in body if b.get("type") == "section")


def test_built_in_tools_declare_their_formats() -> None:
    schema = REGISTRY.info("invite_users")["args_schema"]
    assert readable.formats_of(schema) == {"channel": "slack-channel", "users": "slack-users"}
    for tool in ("post_message", "set_channel_topic"):
        assert readable.formats_of(REGISTRY.info(tool)["args_schema"])["channel"] == "slack-channel"


def test_people_are_named_without_a_ping_and_keep_their_id() -> None:
    shown = readable_value(["U0BOB", "U0NOBODY"], "slack-users", NAMES)
    assert shown == "• @Bob Lee (`U0BOB`)\n• `U0NOBODY`"
    assert "<@" not in (shown or "")
    assert readable_value("U0CAROL", "slack-user", NAMES) == "@Carol (`U0CAROL`)"


def test_a_name_cannot_inject_markup() -> None:
    names = Names(users={"U0EVE": "<!channel> *boss*"})
    shown = readable_value("U0EVE", "slack-user", names) or ""
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown


def test_channels_are_named_and_names_stay_as_written() -> None:
    assert readable_value("C0GEN", "slack-channel", NAMES) == "#general (`C0GEN`)"
    assert readable_value("C0SECRET", "slack-channel", NAMES) == "`C0SECRET`"
    # a name, not an id: no readable form, the card shows it exactly as proposed
    assert readable_value("#general", "slack-channel", NAMES) is None


def test_moments_are_slack_dates_with_the_exact_value() -> None:
    shown = readable_value("2026-12-02T09:30:00+01:00", "date-time") or ""
    epoch = int(datetime(2026, 12, 2, 8, 30, tzinfo=UTC).timestamp())
    token = f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|2026-12-02 08:30 UTC>"
    assert shown.startswith(token)
    assert shown.endswith("(`2026-12-02T09:30:00+01:00`)")
    assert readable_value(epoch, "date-time", NAMES) is not None
    # a naive time names no moment: shown exactly, never converted
    assert readable_value("2026-12-02T09:30:00", "date-time") is None


def test_a_calendar_day_is_written_out_not_shifted_by_time_zones() -> None:
    assert readable_value("2026-12-02", "date") == "Wed 2 Dec 2026 (`2026-12-02`)"
    assert readable_value("2026-13-02", "date") is None


def test_links_are_labelled_by_their_own_url() -> None:
    url = "https://example.com/a?b=1&c=<2>"
    assert readable_value(url, "uri") is None  # < > would end the link: shown exactly
    assert readable_value("https://example.com/a?b=1&c=2", "uri") == (
        "<https://example.com/a?b=1&amp;c=2|https://example.com/a?b=1&amp;c=2>"
    )
    assert readable_value("https://x.com|https://evil.com", "uri") is None
    assert readable_value("javascript:alert(1)", "uri") is None


def test_nested_json_is_a_list_whose_leaves_are_exact() -> None:
    value = {"name": "launch", "count": 1, "tags": ["a", "1"], "extra": {"on": True, "x": None}}
    shown = readable_value(value, None) or ""
    assert shown.splitlines() == [
        '• *name*: `"launch"`',
        "• *count*: `1`",
        "• *tags*:",
        '      ◦ `"a"`',
        '      ◦ `"1"`',
        "• *extra*:",
        "      ◦ *on*: `true`",
        "      ◦ *x*: `null`",
    ]
    assert readable_value({"code": "a`b"}, None) is None  # no exact inline form: raw JSON
    assert readable_value({"*bold*": 1}, None) is None  # a key that would read as markup
    assert readable_value({"a": "x" * 2000}, None) is None  # too long: raw, cut with a note


def test_redacted_values_are_neither_resolved_nor_formatted() -> None:
    request = request_for("invite_users", {"channel": "[redacted]", "users": "[redacted]"})
    assert wanted_ids(request["tool_call"]["args"], request["tool"]["args_schema"]) == ([], [])
    text = card_text(blocks.review_blocks(request, "ref", names=NAMES))
    assert "[redacted]" in text and "@" not in text.replace("Requested", "")


def test_wanted_ids_are_only_the_ids_the_formats_name() -> None:
    request = dated_request({"at": 0, "owner": "U0BOB", "rooms": ["C0GEN", "#x", "C0GEN"]})
    assert wanted_ids(request["tool_call"]["args"], request["tool"]["args_schema"]) == (
        ["U0BOB"],
        ["C0GEN"],
    )


def test_cards_show_names_and_stay_valid() -> None:
    request = request_for("invite_users", {"channel": "C0GEN", "users": ["U0BOB", "U0X"]})
    review = blocks.review_blocks(request, "ref", names=NAMES)
    assert_valid_blocks(review)
    assert "@Bob Lee (`U0BOB`)" in card_text(review) and "#general (`C0GEN`)" in card_text(review)
    decided = blocks.decided_blocks(request, Verdict("continue", "U0CAROL", NOW), names=NAMES)
    assert_valid_blocks(decided)
    assert "• `U0X`" in card_text(decided)
    # without names (Slack refused, or did not answer): the ids
    assert "• `U0BOB`" in card_text(blocks.review_blocks(request, "ref"))


def test_a_change_of_people_names_them_on_the_card_and_after() -> None:
    request = request_for("invite_users", {"channel": "C0GEN", "users": ["U0BOB"]})
    changes = {"users": (["U0BOB"], ["U0BOB", "U0CAROL"]), "channel": ("C0GEN", "C0X")}
    line = "~@Bob Lee (`U0BOB`)~ → @Bob Lee (`U0BOB`), @Carol (`U0CAROL`)"
    decided = blocks.decided_blocks(
        request, Verdict("update", "U0CAROL", NOW, changes=changes), names=NAMES
    )
    assert_valid_blocks(decided)
    assert line in card_text(decided) and "~#general (`C0GEN`)~ → `C0X`" in card_text(decided)
    pending = blocks.review_blocks(request, "ref", Progress((), 2, "U0CAROL", changes), names=NAMES)
    assert line in card_text(pending)
    # a value of no such shape is shown exactly, as before
    odd = blocks.decided_blocks(
        request, Verdict("update", "U0CAROL", NOW, changes={"users": ("x", "y")}), names=NAMES
    )
    assert "• *users*: ~x~ → y" in card_text(odd)


def test_a_hundred_people_fit_a_section() -> None:
    users = [f"U{i:08d}" for i in range(100)]
    names = Names(users={u: "N" * 200 for u in users})
    request = request_for("invite_users", {"channel": "C0GEN", "users": users})
    body = blocks.review_blocks(request, "ref", names=names)
    assert_valid_blocks(body)
    assert "open *Edit*" in card_text(body)  # too long to show readably: exact, cut with a note


# -- Edit: Slack's pickers ---------------------------------------------------------------------


def _element(view: dict[str, Any], name: str) -> dict[str, Any]:
    block = next(b for b in view["blocks"] if b.get("block_id") == modals.arg_block_id(name))
    return dict(block["element"])


def test_edit_offers_people_and_channel_pickers_and_reads_them_back() -> None:
    request = request_for("invite_users", {"channel": "C0GEN", "users": ["U0BOB"]})
    view = modals.edit_modal(request, "ref")
    assert_valid_view(view)
    people, room = _element(view, "users"), _element(view, "channel")
    assert people["type"] == "multi_users_select" and people["initial_users"] == ["U0BOB"]
    assert people["max_selected_items"] == 100
    assert room["type"] == "conversations_select" and room["initial_conversation"] == "C0GEN"
    state = {
        modals.arg_block_id("users"): {"value": {"selected_users": ["U0BOB", "U0CAROL"]}},
        modals.arg_block_id("channel"): {"value": {"selected_conversation": "C0NEW"}},
    }
    parsed = modals.parse_edit(request, state)
    assert parsed.errors == {}
    assert parsed.args == {"channel": "C0NEW", "users": ["U0BOB", "U0CAROL"]}
    empty = modals.parse_edit(
        request, {modals.arg_block_id("users"): {"value": {"selected_users": []}}}
    )
    assert modals.arg_block_id("users") in empty.errors  # required: Slack would ask too


def test_a_channel_given_by_name_keeps_a_text_input() -> None:
    request = request_for("post_message", {"channel": "#general", "text": "hi"})
    element = _element(modals.edit_modal(request, "ref"), "channel")
    assert element["type"] == "plain_text_input" and element["initial_value"] == "#general"


def test_ids_that_are_not_ids_keep_a_text_input() -> None:
    request = request_for("invite_users", {"channel": "C0GEN", "users": ["<@U0BOB>"]})
    assert _element(modals.edit_modal(request, "ref"), "users")["type"] == "plain_text_input"


def test_date_pickers_round_trip_in_the_schemas_type() -> None:
    proposed = {"at": "2026-12-02T09:30:00+01:00", "day": "2026-12-24"}
    request = dated_request(proposed)
    view = modals.edit_modal(request, "ref")
    assert_valid_view(view)
    at, day = _element(view, "at"), _element(view, "day")
    epoch = int(datetime(2026, 12, 2, 8, 30, tzinfo=UTC).timestamp())
    assert at == {"action_id": "value", "type": "datetimepicker", "initial_date_time": epoch}
    assert day["type"] == "datepicker" and day["initial_date"] == "2026-12-24"
    same = {
        modals.arg_block_id("at"): {"value": {"selected_date_time": epoch}},
        modals.arg_block_id("day"): {"value": {"selected_date": "2026-12-24"}},
    }
    assert modals.parse_edit(request, same).args == proposed  # unchanged: exactly as written
    moved = {
        modals.arg_block_id("at"): {"value": {"selected_date_time": epoch + 3600}},
        modals.arg_block_id("day"): {"value": {"selected_date": "2026-12-25"}},
    }
    parsed = modals.parse_edit(request, moved)
    assert parsed.args == {"at": "2026-12-02T09:30:00+00:00", "day": "2026-12-25"}
    epochs = dated_request({"at": epoch}, kind="integer")
    assert _element(modals.edit_modal(epochs, "ref"), "at")["initial_date_time"] == epoch
    back = modals.parse_edit(epochs, moved)
    assert back.args["at"] == epoch + 3600 and isinstance(back.args["at"], int)


def test_moments_a_picker_cannot_hold_keep_a_text_input() -> None:
    for at in ("2026-12-02T09:30:15+01:00", "2026-12-02T09:30:00", "soon"):
        request = dated_request({"at": at})
        element = _element(modals.edit_modal(request, "ref"), "at")
        assert element["type"] == "plain_text_input" and element["initial_value"] == at


def test_picker_values_of_the_wrong_shape_are_refused() -> None:
    request = dated_request({"at": "2026-12-02T09:30:00+00:00"})
    state = {modals.arg_block_id("at"): {"value": {"selected_date_time": "noon"}}}
    assert modals.parse_edit(request, state).errors
    day = {modals.arg_block_id("day"): {"value": {"selected_date": "2026-02-30"}}}
    assert modals.arg_block_id("day") in modals.parse_edit(request, day).errors


@pytest.mark.parametrize(
    ("fmt", "schema_type", "value", "picker"),
    [
        ("slack-user", "string", "U0BOB", pickers.USER_PICKER),
        ("slack-user", "string", None, pickers.USER_PICKER),
        ("slack-channels", "array", ["C0GEN"], pickers.CHANNELS_PICKER),
        ("slack-channel", "string", "#general", None),
        ("date", "string", "24/12/2026", None),
    ],
)
def test_which_picker(fmt: str, schema_type: str, value: Any, picker: str | None) -> None:
    assert pickers.picker_kind({"type": schema_type, "format": fmt}, value) == picker


def test_every_picker_is_valid_block_kit() -> None:
    request = request_for("weather_search", {})
    request["tool"]["args_schema"] = {
        "properties": {
            "one": {"type": "string", "format": "slack-user"},
            "many": {"type": "array", "format": "slack-users", "maxItems": 5},
            "room": {"type": "string", "format": "slack-channel"},
            "rooms": {"type": "array", "format": "slack-channels"},
            "day": {"type": "string", "format": "date"},
            "at": {"type": "integer", "format": "date-time"},
        }
    }
    request["tool_call"]["args"] = {
        "one": "U0BOB",
        "many": ["U0BOB", "U0CAROL"],
        "room": "C0GEN",
        "rooms": ["C0GEN"],
        "day": "2026-12-24",
        "at": 1_800_000_000 - 1_800_000_000 % 60,
    }
    view = modals.edit_modal(request, "ref")
    assert_valid_view(view)
    types = [b["element"]["type"] for b in view["blocks"] if b["type"] == "input"]
    assert types == [
        "users_select",
        "multi_users_select",
        "conversations_select",
        "multi_conversations_select",
        "datepicker",
        "datetimepicker",
    ]
    assert_valid_blocks(blocks.review_blocks(request, "ref", names=NAMES))


def test_the_sandbox_checks_pickers_as_slack_does() -> None:
    request = request_for("invite_users", {"channel": "C0GEN", "users": ["U0BOB"]})
    view = modals.edit_modal(request, "ref")
    assert sandbox_blocks.validate_view(view) == []
    bad = [dict(b) for b in view["blocks"]]
    users = next(b for b in bad if b.get("block_id") == modals.arg_block_id("users"))
    users["element"] = {**users["element"], "initial_users": "U0BOB", "max_selected_items": 0}
    errors = sandbox_blocks.validate_view({**view, "blocks": bad})
    assert any("initial_users" in e for e in errors) and any("max_selected" in e for e in errors)
    day = {"type": "datepicker", "action_id": "v", "initial_date": "24/12/2026"}
    moment = {"type": "datetimepicker", "action_id": "v", "initial_date_time": "noon"}
    for element in (day, moment):
        block = {"type": "input", "block_id": "b", "label": {"type": "plain_text", "text": "x"}}
        assert sandbox_blocks.validate_view({**view, "blocks": [{**block, "element": element}]})


def test_the_sandbox_gives_picked_values_slack_shaped() -> None:
    people = {"type": "multi_users_select", "action_id": "v"}
    assert modal_state.element_state(people, "U0BOB", True)[0]["selected_users"] == ["U0BOB"]
    moment = {"type": "datetimepicker", "action_id": "v"}
    assert modal_state.element_state(moment, "1798099200", True)[0] == {
        "type": "datetimepicker",
        "selected_date_time": 1_798_099_200,
    }
    assert modal_state.element_state(moment, "noon", True)[0]["selected_date_time"] == "noon"
