"""The App Home and ``/approvals`` builders: valid Block Kit at every size, escaped text, the
right links, and a friendly empty state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot import home, migrations
from bot.home import Waiting, WaitingReview
from tests.support.block_kit import assert_valid_blocks, assert_valid_view

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
WORKSPACE = "https://acme.slack.com/"


def review(number: int = 0, **fields: object) -> WaitingReview:
    values: dict[str, object] = {
        "ref": f"ref-{number}",
        "tool_name": "post_message",
        "args": {"channel": "#general", "text": f"hello {number}"},
        "requested_by": "U0CAROL",
        "channel_id": "C0GENERAL",
        "thread_ts": "1714564800.000100",
        "message_ts": "1714564801.000200",
        "created_at": NOW - timedelta(minutes=5 + number),
    }
    return WaitingReview(**(values | fields))  # type: ignore[arg-type]


def texts(blocks: list[dict[str, object]]) -> str:
    parts = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text["text"]))
        for element in block.get("elements") or []:  # type: ignore[attr-defined]
            parts.append(str(element.get("text", "")))
    return "\n".join(parts)


def test_empty_state_is_friendly_in_both_surfaces() -> None:
    view = home.home_view(Waiting(()), now=NOW, workspace_url=WORKSPACE)
    assert_valid_view(view)
    assert view["type"] == "home"
    assert "Nothing is waiting for you" in texts(view["blocks"])
    text, blocks = home.approvals_message(Waiting(()), now=NOW, workspace_url=WORKSPACE)
    assert_valid_blocks(blocks)
    assert text == "Nothing is waiting for you."


def test_an_entry_shows_tool_summary_asker_age_and_thread_link() -> None:
    view = home.home_view(home.waiting_from([review()]), now=NOW, workspace_url=WORKSPACE)
    assert_valid_view(view)
    shown = texts(view["blocks"])
    assert "*`post_message`*  channel=#general, text=hello 0" in shown
    assert "Asked by <@U0CAROL> · 5 min ago" in shown
    assert (
        "<https://acme.slack.com/archives/C0GENERAL/p1714564801000200"
        "?thread_ts=1714564800.000100&cid=C0GENERAL|Open the thread>"
    ) in shown
    assert "1 review you may decide" in shown


def test_text_from_people_and_the_model_cannot_ping_or_break_the_line() -> None:
    nasty = review(args={"text": "<!channel> ping <@U0BOSS>\nsecond & third " + "x" * 500})
    [section, _] = home.review_entry(nasty, now=NOW, workspace_url=WORKSPACE)
    line = section["text"]["text"]
    assert "<!channel>" not in line and "<@U0BOSS>" not in line
    assert "&lt;!channel&gt; ping &lt;@U0BOSS&gt;" in line
    assert "\n" not in line and "second &amp; third" in line
    assert line.endswith("…") and len(line) < 300


def test_summary_escapes_after_truncating_so_no_entity_is_cut() -> None:
    summary = home.summarize_args({"q": "&" * 200}, limit=20)
    assert summary == "q=" + "&amp;" * 17 + "…"
    assert home.summarize_args({}) == "_no arguments_"
    assert home.summarize_args({"n": 3, "tags": ["a", "b"]}) == 'n=3, tags=["a", "b"]'


def test_without_a_workspace_url_or_message_ts() -> None:
    entry = home.review_entry(review(message_ts=None), now=NOW, workspace_url=None)
    assert "Open the thread" not in texts(entry)
    link = home.thread_link("https://acme.slack.com", "C1", "1.000200", None)
    assert link == "https://acme.slack.com/archives/C1/p1000200?thread_ts=1.000200&cid=C1"
    unsafe = home.review_entry(review(), now=NOW, workspace_url="javascript:alert(1)|x")
    assert "Open the thread" not in texts(unsafe)
    anonymous = home.review_entry(review(requested_by=None), now=NOW, workspace_url=None)
    assert texts(anonymous).startswith("*`post_message`*") and "Asked ·" in texts(anonymous)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "just now"),
        (59, "just now"),
        (60, "1 min ago"),
        (3599, "59 min ago"),
        (7200, "2 h ago"),
        (86400, "1 day ago"),
        (3 * 86400, "3 days ago"),
    ],
)
def test_age(seconds: int, expected: str) -> None:
    assert home.age_text(NOW - timedelta(seconds=seconds), NOW) == expected


@pytest.mark.parametrize("count", [1, 19, 20, 21, 57])
def test_at_most_twenty_with_a_count_of_the_rest_and_within_limits(count: int) -> None:
    reviews = [
        review(n, tool_name=f"tool_{n:02d}", args={f"arg{i}": "v" * 400 for i in range(30)})
        for n in range(count)
    ]
    waiting = home.waiting_from(reviews)
    assert len(waiting.shown) == min(count, 20) and waiting.more == max(0, count - 20)
    view = home.home_view(waiting, now=NOW, workspace_url=WORKSPACE)
    assert_valid_view(view)
    text, blocks = home.approvals_message(waiting, now=NOW, workspace_url=WORKSPACE)
    assert_valid_blocks(blocks)  # a message: 50 blocks at most
    shown = texts(blocks)
    assert f"{count} review{'s' if count != 1 else ''} you may decide" in text
    assert ("more." in shown) is (count > 20)
    if count > 20:
        assert f"…and {count - 20} more" in shown
    assert "ref-0" not in shown  # references stay server-side
    assert shown.index("tool_00") <= shown.index(f"tool_{min(count, 20) - 1:02d}")  # given order
    assert "tool_20" not in shown


def test_a_capped_scan_says_the_count_is_a_lower_bound() -> None:
    waiting = home.waiting_from([review(n) for n in range(25)], complete=False)
    text, blocks = home.approvals_message(waiting, now=NOW, workspace_url=None)
    assert text.startswith("25+ reviews") and "…and 5+ more" in texts(blocks)


def test_the_index_serves_the_pending_query() -> None:
    [index] = migrations.HOME_SCHEMA
    assert "IF NOT EXISTS" in index and "slack_reviews (status, created_at DESC)" in index
    assert "WHERE status = 'pending'" in home.PENDING_SQL
    assert "ORDER BY created_at DESC" in home.PENDING_SQL


def pending_row(
    ref: str = "ref-1", args: str = '{"b": 1, "a": 2}', **changes: object
) -> tuple[Any, ...]:
    """A ``PENDING_SQL`` row, as psycopg returns it."""
    row: dict[str, object] = {
        "ref": ref,
        "tool_name": "post_message",
        "args": args,
        "edit": None,
        "requested_by": "U0CAROL",
        "requesters": '["U0CAROL", "U0ALICE"]',
        "channel_id": "C0GENERAL",
        "thread_ts": "1714564800.000100",
        "message_ts": None,
        "created_at": NOW,
        "policy_match": None,
        "escalated_to": None,
    }
    return tuple((row | changes).values())


def test_a_pending_row_builds_the_review_the_list_shows() -> None:
    """Arguments keep the proposal's order, an edit awaiting its quorum is what would run,
    and what is not an object reads as none."""
    built = home.waiting_review(
        pending_row(edit='{"a": 3, "b": 1}', escalated_to='["U0DAN"]', policy_match='{"rule": 1}')
    )
    assert list(built.args.items()) == [("b", 1), ("a", 3)]
    assert built.proposed == {"b": 1, "a": 2} and built.edit == {"a": 3, "b": 1}
    assert built.requesters == ("U0CAROL", "U0ALICE") and built.escalated_to == {"U0DAN"}
    assert built.policy_match == {"rule": 1}
    odd = home.waiting_review(pending_row(args="[1]", edit="null", requesters=None))
    assert (odd.args, odd.proposed, odd.edit, odd.requesters) == ({}, {}, None, ())


def test_a_scan_builds_again_only_the_rows_that_changed() -> None:
    """An equal row gives the review built last scan (the same object); a row changed in any
    column read (here an edit) is built anew, as a scan without the map would."""
    scans = home.LatestScan()
    rows = [pending_row("ref-1"), pending_row("ref-2")]
    first = scans.reviews(rows)
    again = scans.reviews([pending_row("ref-1"), pending_row("ref-2")])
    assert [a is b for a, b in zip(first, again, strict=True)] == [True, True]
    edited = pending_row("ref-2", edit='{"a": 9}')
    [kept, rebuilt] = scans.reviews([pending_row("ref-1"), edited])
    assert kept is first[0] and rebuilt is not first[1]
    assert rebuilt == home.waiting_review(edited) and rebuilt.args == {"a": 9}
    [only] = scans.reviews([pending_row("ref-2")])  # the map holds the latest scan only
    assert only is not rebuilt and only == first[1]
