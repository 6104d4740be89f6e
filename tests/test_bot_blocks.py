"""Every message and modal the bot builds passes slack_sdk's validators and Slack's limits,
including with hostile or huge input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot import blocks, modals
from bot.blocks import Verdict
from graph import ReviewRequest, ToolResult
from graph.tools.registry import build_registry
from tests.support.block_kit import assert_valid_blocks, assert_valid_view

REGISTRY = build_registry()
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def request_for(tool: str, args: dict[str, Any], by: str | None = "U0ALICE") -> ReviewRequest:
    return ReviewRequest(
        question="Is this correct?",
        tool_call={"name": tool, "args": args, "id": "toolu_1"},
        tool=REGISTRY.info(tool),
        requested_by=by,
    )


CASES = [
    request_for("weather_search", {"city": "sf"}),
    request_for("post_message", {"channel": "#general", "text": "x" * 10_000}),
    request_for("invite_users", {"channel": "#general", "users": ["U1", "U2"]}),
    request_for("create_channel", {"name": "launch", "is_private": True}),
    request_for("set_channel_topic", {"channel": "#general", "topic": "<!channel> hi"}, by=None),
]


@pytest.mark.parametrize("request_", CASES)
def test_review_and_decided_messages_are_valid(request_: ReviewRequest) -> None:
    assert_valid_blocks(blocks.review_blocks(request_, "ref-123"))
    for verdict in (
        Verdict("continue", "U0BOB", NOW),
        Verdict("update", "U0BOB", NOW, changes={"x": ("a" * 5000, "b" * 5000)}),
        Verdict("feedback", "U0BOB", NOW, feedback="no\n" * 2000),
        Verdict("expired", None, NOW),
    ):
        assert_valid_blocks(blocks.decided_blocks(request_, verdict))


@pytest.mark.parametrize("request_", CASES)
def test_modals_are_valid(request_: ReviewRequest) -> None:
    assert_valid_view(modals.edit_modal(request_, "ref-123"))
    assert_valid_view(modals.feedback_modal(request_, "ref-123"))


def test_many_arguments_stay_within_limits() -> None:
    args = {f"arg{i}": "v" * 3000 for i in range(200)}
    request_ = request_for("weather_search", args)
    request_["tool"]["args_schema"] = {"properties": {k: {"type": "string"} for k in args}}
    message = blocks.review_blocks(request_, "ref")
    assert_valid_blocks(message)
    assert "+180 more arguments" in str(message)
    assert_valid_view(modals.edit_modal(request_, "ref"))


def test_user_and_model_text_cannot_ping() -> None:
    request_ = request_for("post_message", {"channel": "#general", "text": "<!channel> <@U0BOB>"})
    rendered = str(blocks.review_blocks(request_, "ref"))
    assert "<!channel>" not in rendered and "<@U0BOB>" not in rendered
    assert "&lt;!channel&gt;" in rendered
    reply = str(blocks.reply_blocks("hey <!here> & <@U1>"))
    assert "<!here>" not in reply and "&amp;" in reply


def test_long_values_are_cut_and_point_to_edit() -> None:
    text = blocks.format_value("y" * 5000)
    assert len(text) < 1200 and "open *Edit*" in text


def test_button_values_are_only_the_reference_and_the_version_shown() -> None:
    [actions] = [b for b in blocks.review_blocks(CASES[0], "opaque-ref") if b["type"] == "actions"]
    assert {e["value"] for e in actions["elements"]} == {"opaque-ref 0"}
    [edited] = [
        b for b in blocks.review_blocks(CASES[0], "opaque-ref", version=3) if b["type"] == "actions"
    ]
    assert {e["value"] for e in edited["elements"]} == {"opaque-ref 3"}
    assert blocks.parse_button_value("opaque-ref 3") == ("opaque-ref", 3)
    assert blocks.parse_button_value("opaque-ref") == ("opaque-ref", 0)  # an older card
    assert blocks.parse_button_value("opaque-ref x") == ("opaque-ref", 0)
    assert [e["action_id"] for e in actions["elements"]] == [
        blocks.APPROVE,
        blocks.EDIT,
        blocks.FEEDBACK,
    ]
    assert actions["elements"][0]["style"] == "primary"


def test_tool_results_and_replies_are_valid() -> None:
    for status in ("success", "error"):
        assert_valid_blocks(
            blocks.tool_result_blocks(ToolResult("toolu_1", "post_message", "z" * 9000, status))
        )  # type: ignore[arg-type]
    assert_valid_blocks(blocks.reply_blocks("w" * 20_000))
    assert_valid_blocks(blocks.notice_blocks("hello"))


def test_edit_modal_types_inputs_from_the_schema() -> None:
    view = modals.edit_modal(CASES[3], "ref")
    by_block = {b.get("block_id"): b for b in view["blocks"]}
    name = by_block["arg:name"]
    assert name["element"]["type"] == "plain_text_input"
    assert name["element"]["initial_value"] == "launch"
    assert name["optional"] is False
    private = by_block["arg:is_private"]["element"]
    assert private["type"] == "radio_buttons"
    assert private["initial_option"]["value"] == "true"
    users = modals.edit_modal(CASES[2], "ref")["blocks"][2]["element"]
    assert users["multiline"] is True and '"U1"' in users["initial_value"]


def test_parse_edit_reads_types_and_reports_errors_per_field() -> None:
    request_ = CASES[2]
    good = modals.parse_edit(
        request_,
        {
            "arg:channel": {"value": {"type": "plain_text_input", "value": "#random"}},
            "arg:users": {"value": {"type": "plain_text_input", "value": '["U0BOB"]'}},
        },
    )
    assert good.errors == {} and good.args == {"channel": "#random", "users": ["U0BOB"]}
    bad = modals.parse_edit(
        request_,
        {
            "arg:channel": {"value": {"type": "plain_text_input", "value": None}},
            "arg:users": {"value": {"type": "plain_text_input", "value": '{"a": 1}'}},
        },
    )
    assert bad.errors["arg:channel"] == "This field is required."
    assert "JSON array" in bad.errors["arg:users"]
    broken = modals.parse_edit(
        request_,
        {
            "arg:channel": {"value": {"type": "plain_text_input", "value": "#x"}},
            "arg:users": {"value": {"type": "plain_text_input", "value": "[oops"}},
        },
    )
    assert "Not valid JSON" in broken.errors["arg:users"]


def test_numbers_and_enums() -> None:
    request_ = request_for("weather_search", {"days": 3, "unit": "c"})
    request_["tool"]["args_schema"] = {
        "properties": {
            "days": {"type": "integer", "minimum": 1},
            "unit": {"type": "string", "enum": ["c", "f"]},
        },
        "required": ["days"],
    }
    view = modals.edit_modal(request_, "ref")
    assert_valid_view(view)
    days, unit = view["blocks"][1]["element"], view["blocks"][2]["element"]
    assert days["type"] == "number_input" and days["is_decimal_allowed"] is False
    assert unit["type"] == "static_select" and unit["initial_option"]["value"] == "c"
    parsed = modals.parse_edit(
        request_,
        {
            "arg:days": {"value": {"type": "number_input", "value": "2.5"}},
            "arg:unit": {"value": {"type": "static_select", "selected_option": {"value": "f"}}},
        },
    )
    assert parsed.errors == {"arg:days": "Enter a whole number."}


def _text_input(value: str | None) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def _replace_box(ticked: bool) -> dict[str, Any]:
    options = [{"value": modals.REPLACE_OPTION}] if ticked else []
    return {"value": {"type": "checkboxes", "selected_options": options}}


def _inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


LONG = "".join(f"{i:05d} " for i in range(740))  # 4,440 characters, each position unique


def test_edit_keeps_a_value_too_long_for_an_input_exactly_as_proposed() -> None:
    request_ = request_for("post_message", {"channel": "#general", "text": LONG})
    view = modals.edit_modal(request_, "ref")
    assert_valid_view(view)
    inputs = _inputs(view)
    assert "initial_value" not in inputs["arg:text"]["element"]  # empty, never a cut prefix
    assert inputs["replace:text"]["element"]["type"] == "checkboxes"
    assert "Too long to edit here (4,440 characters" in str(view["blocks"])
    assert "Kept exactly as proposed" in str(view["blocks"])
    only_channel = modals.parse_edit(
        request_, {"arg:channel": _text_input("#random"), "arg:text": _text_input(None)}
    )
    assert only_channel.errors == {}
    assert only_channel.args == {"channel": "#random", "text": LONG}
    typed_unticked = modals.parse_edit(
        request_, {"arg:channel": _text_input("#random"), "arg:text": _text_input("new words")}
    )
    assert "Tick “Replace it”" in typed_unticked.errors["arg:text"]
    replaced = modals.parse_edit(
        request_,
        {
            "arg:channel": _text_input("#random"),
            "replace:text": _replace_box(True),
            "arg:text": _text_input("new words"),
        },
    )
    assert replaced.errors == {} and replaced.args["text"] == "new words"
    ticked_empty = modals.parse_edit(
        request_, {"replace:text": _replace_box(True), "arg:text": _text_input(None)}
    )
    assert ticked_empty.errors["arg:text"] == "This field is required."


def test_a_kept_value_of_special_characters_stays_within_a_section() -> None:
    request_ = request_for("post_message", {"channel": "#general", "text": "&<>" * 1500})
    view = modals.edit_modal(request_, "ref")
    assert_valid_view(view)
    assert "more characters not shown" in str(view["blocks"])


def test_edit_keeps_a_json_value_too_long_for_an_input() -> None:
    big = {"rows": [f"row {i}" for i in range(400)]}
    request_ = request_for("weather_search", {"data": big})
    request_["tool"]["args_schema"] = {"properties": {"data": {"type": "object"}}}
    view = modals.edit_modal(request_, "ref")
    assert_valid_view(view)
    assert "initial_value" not in _inputs(view)["arg:data"]["element"]
    kept = modals.parse_edit(request_, {})
    assert kept.errors == {} and kept.args == {"data": big}


INVISIBLE = "pay \u202eredro\u202c now\u200b\u2066x\u2069\ufeff\x07\x85 tab\tline\nend"


def test_invisible_characters_are_written_out_on_cards() -> None:
    request_ = request_for("post_message", {"channel": "#general", "text": INVISIBLE})
    card = str(blocks.review_blocks(request_, "ref"))
    decided = blocks.decided_blocks(
        request_, Verdict("update", "U0BOB", NOW, changes={"text": (INVISIBLE, "x\u200dy")})
    )
    for rendered in (card, str(decided)):
        for code in ("202E", "202C", "200B", "2066", "2069", "FEFF", "0007", "0085"):
            assert f"⟨U+{code}⟩" in rendered
        assert not any(ch in rendered for ch in "\u202e\u200b\u2066\ufeff\x07\x85")
    assert "⟨U+200D⟩" in str(decided)
    assert "tab\\tline\\nend" in card  # tab and newline are ordinary text
    assert_valid_blocks(decided)


def test_edit_shows_invisible_characters_and_keeps_the_value_unless_replaced() -> None:
    request_ = request_for("post_message", {"channel": "#general", "text": INVISIBLE})
    view = modals.edit_modal(request_, "ref")
    assert_valid_view(view)
    assert "⟨U+202E⟩" in str(view["blocks"]) and "\u202e" not in str(view["blocks"])
    assert "initial_value" not in _inputs(view)["arg:text"]["element"]
    kept = modals.parse_edit(request_, {"arg:channel": _text_input("#random")})
    assert kept.args == {"channel": "#random", "text": INVISIBLE}
    json_request = request_for("invite_users", {"channel": "#g", "users": ["U1\u202e"]})
    json_view = modals.edit_modal(json_request, "ref")
    assert "initial_value" not in _inputs(json_view)["arg:users"]["element"]
    assert modals.parse_edit(json_request, {}).args["users"] == ["U1\u202e"]


def test_many_protected_values_stay_within_a_modal() -> None:
    args = {f"arg{i}": "v" * 3001 for i in range(60)}
    request_ = request_for("weather_search", args)
    request_["tool"]["args_schema"] = {"properties": {k: {"type": "string"} for k in args}}
    view = modals.edit_modal(request_, "ref")
    assert_valid_view(view)
    assert modals.parse_edit(request_, {}).args == args


def test_modal_errors_are_plain_words() -> None:
    stale = blocks.stale_text("continue", "U0BOB", NOW)
    words = modals.plain(stale, {"U0BOB": "bob"})
    assert words == "This review was already approved by @bob 2026-11-25 12:00 UTC."
    assert modals.plain(stale).startswith("This review was already approved by someone ")
    assert modals.plain("Slack refused: invalid character '_' in *name*") == (
        "Slack refused: invalid character '_' in name"
    )
    assert modals.plain("use `snake_case_names` &amp; <https://x.example|the guide>") == (
        "use snake_case_names & the guide"
    )
