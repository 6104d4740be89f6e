"""What you see is what runs, end to end (sandbox <-> bot over signed HTTP, real PostgreSQL):
Slack's text encoding is undone once on the way in and done once on the way out, the Edit form
never cuts or silently alters a proposed value, invisible characters are written out, and what
the bot says in modals and refusals is plain words, said once."""

from __future__ import annotations

from typing import Any

import pytest

from bot.home import summarize_args
from bot.mrkdwn import decode_incoming
from bot.repeats import RepeatFilter
from graph.tools.slack import slack_text
from sandbox.events import wire_text
from sandbox.server import Sandbox
from tests.support.bot_harness import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    SlackEnv,
    review_messages,
    running_slack_env,
    text_of,
)
from tests.support.slack_text import unescape


async def review_for(sandbox: Sandbox, ts: str) -> dict[str, Any]:
    [review] = await sandbox.wait_for(lambda: review_messages(sandbox, "C0GENERAL", ts))
    return review


def argument_section(review: dict[str, Any], name: str) -> str:
    """The mrkdwn of the card's section for one argument: ``*name*\\nvalue``."""
    for block in review["blocks"]:
        text = (block.get("text") or {}).get("text", "")
        if block["type"] == "section" and text.startswith(f"*{name}*\n"):
            return str(text.removeprefix(f"*{name}*\n"))
    raise AssertionError(f"no {name} on the card: {text_of(review)}")


async def idle(env: SlackEnv) -> None:
    """Every task the bot started for the requests so far has finished."""
    await env.sandbox.wait_for(lambda: all(task.done() for task in env.bot.work.tasks), 30)


async def test_typed_text_is_shown_decoded_and_posted_encoded_once(env: SlackEnv) -> None:
    sandbox = env.sandbox
    typed = '@approvals post "Tom & Jerry <3" to #random'
    ts = await sandbox.type_message(ALICE, "#general", typed)
    # the wire form is Slack's: entities encoded
    assert "Tom &amp; Jerry &lt;3" in sandbox.replies("C0GENERAL", ts)[0]["text"]
    review = await review_for(sandbox, ts)
    shown = argument_section(review, "text")
    assert shown == "Tom &amp; Jerry &lt;3"  # escaped once: reads "Tom & Jerry <3"
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    post = await sandbox.wait_for_call(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0RANDOM", within=30
    )
    assert post.args["text"] == "Tom &amp; Jerry &lt;3"  # encoded once
    assert unescape(post.args["text"]) == unescape(shown) == "Tom & Jerry <3"


async def test_a_broadcast_in_a_topic_is_words_and_literal_markup_stays_literal(
    env: SlackEnv,
) -> None:
    sandbox = env.sandbox
    ts = await sandbox.type_message(
        ALICE, "#general", '@approvals set the topic of #random to "@channel ping"'
    )
    review = await review_for(sandbox, ts)
    assert argument_section(review, "topic") == "@channel ping"
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    topic = await sandbox.wait_for_call("conversations.setTopic", within=30)
    assert topic.args["topic"] == "@channel ping"  # words, not <!channel>

    ts = await sandbox.type_message(
        ALICE, "#general", '@approvals set the topic of #random to "<!channel> ping"'
    )
    review = await review_for(sandbox, ts)
    assert argument_section(review, "topic") == "&lt;!channel&gt; ping"  # reads <!channel>
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_approve")
    literal = await sandbox.wait_for_call(
        "conversations.setTopic", lambda c: c is not topic, within=30
    )
    assert literal.args["topic"] == "&lt;!channel&gt; ping"  # shown as typed, no ping
    assert unescape(sandbox.workspace.channels["C0RANDOM"].topic) == "<!channel> ping"


LONG = "".join(f"{i:04d}." for i in range(700))  # 3,500 characters, over an input's 3,000


async def test_edit_posts_a_long_text_whole_when_only_the_channel_changes(env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", f'<@{BOT}> post "{LONG}" to #random')
    review = await review_for(sandbox, ts)
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    done = await sandbox.submit_modal(ALICE, {"arg:channel": "#general"})
    assert done.closed, done
    post = await sandbox.wait_for_call(
        "chat.postMessage", lambda c: c.args.get("channel") == "#general", within=30
    )
    assert post.args["text"] == LONG  # not its first 3,000 characters
    assert "Kept exactly as proposed" in str(modal["blocks"])


SNEAKY = "refund \u202e0001\u202c euros\u200b"


async def test_invisible_characters_are_written_out_and_kept_through_edit(env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", f'<@{BOT}> post "{SNEAKY}" to #random')
    review = await review_for(sandbox, ts)
    assert argument_section(review, "text") == "refund ⟨U+202E⟩0001⟨U+202C⟩ euros⟨U+200B⟩"
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    modal = await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    assert "⟨U+202E⟩" in str(modal["blocks"]) and "\u202e" not in str(modal["blocks"])
    done = await sandbox.submit_modal(ALICE, {"arg:channel": "#general"})
    assert done.closed, done
    post = await sandbox.wait_for_call(
        "chat.postMessage", lambda c: c.args.get("channel") == "#general", within=30
    )
    assert post.args["text"] == SNEAKY
    decided = await sandbox.wait_for(
        lambda: next(
            (m for m in sandbox.replies("C0GENERAL", ts) if "Edited and approved" in text_of(m)),
            None,
        ),
        within=30,
    )
    assert "⟨U+202E⟩" in text_of(decided) and "\u202e" not in text_of(decided)


async def test_a_stale_edit_submit_says_who_decided_in_plain_words(env: SlackEnv) -> None:
    sandbox = env.sandbox
    ts = await sandbox.post_message(ALICE, "#general", f"<@{BOT}> what's the weather in Oslo?")
    review = await review_for(sandbox, ts)
    await sandbox.click_button(ALICE, "C0GENERAL", review["ts"], "review_edit")
    await sandbox.wait_for(lambda: sandbox.open_modal(ALICE))
    await sandbox.click_button(BOB, "C0GENERAL", review["ts"], "review_approve")
    await sandbox.wait_for(
        lambda: "Approved by" in text_of(sandbox.replies("C0GENERAL", ts)[1]), within=30
    )
    stale = await sandbox.submit_modal(ALICE, {"arg:city": "Bergen"})
    [error] = stale.errors.values()
    assert error.startswith("This review was already approved by @bob "), error
    assert "<" not in error and "!date" not in error and "UTC" in error


async def test_refusals_name_the_group_by_handle_and_are_said_once(database_url: str) -> None:
    approvers = {"*": frozenset({"S0APPROVERS"})}
    async with running_slack_env(database_url, approvers=approvers) as env:
        sandbox = env.sandbox
        ts = await sandbox.post_message(CAROL, "#general", f"<@{BOT}> what's the weather in Rome?")
        review = await review_for(sandbox, ts)
        for _ in range(3):
            await sandbox.click_button(CAROL, "C0GENERAL", review["ts"], "review_approve")
        await idle(env)
        [refusal] = sandbox.ephemerals(CAROL)
        assert "Only @approvers may decide" in refusal["text"], refusal
        assert "S0APPROVERS" not in refusal["text"]
        refused = await env.bot.flow.audit.query(user=CAROL, outcome="refused")
        # every refusal is audited; only the note is said once
        assert len([r for r in refused if r["thread_id"].endswith(ts)]) == 3


# -- the pure helpers behind the above ------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "read"),
    [
        ("Tom &amp; Jerry &lt;3", "Tom & Jerry <3"),
        ("&amp;lt;b&amp;gt;", "&lt;b&gt;"),  # decoded once, never twice
        ("ask <@U0BOB> in <#C0RANDOM|random>", "ask <@U0BOB> in <#C0RANDOM|random>"),
        ("<@U0BOB|bob> <#C0RANDOM>", "<@U0BOB> <#C0RANDOM>"),
        ("<!channel> <!here> <!everyone>", "@channel @here @everyone"),
        ("<!subteam^S0APPROVERS|@approvers> <!subteam^S0X>", "@approvers @S0X"),
        ("<!date^1700000000^{date_short}|Nov 14>", "Nov 14"),
        ("<https://example.com|example.com> <https://example.com>", "https://example.com " * 2),
        ("<mailto:a@b.example|a@b.example>", "a@b.example"),
        ("<https://x.example?a=1&amp;b=2|x &amp; y>", "x & y (https://x.example?a=1&b=2)"),
        ("<https://evil.example|slack.com>", "slack.com (https://evil.example)"),
    ],
)
def test_incoming_text_is_decoded_once_into_readable_references(wire: str, read: str) -> None:
    assert decode_incoming(wire) == read.rstrip()


def test_outgoing_text_is_encoded_once_keeping_only_people_and_channels() -> None:
    assert slack_text("Tom & Jerry <3") == "Tom &amp; Jerry &lt;3"
    assert slack_text("<!channel> ping") == "&lt;!channel&gt; ping"
    assert slack_text("<https://evil.example|slack.com>") == (
        "&lt;https://evil.example|slack.com&gt;"
    )
    assert slack_text("hi <@U0BOB>, see <#C0RANDOM|random>") == (
        "hi <@U0BOB>, see <#C0RANDOM|random>"
    )
    assert slack_text("&amp;") == "&amp;amp;"  # the characters typed, not an entity


def test_the_same_note_is_said_once_per_window() -> None:
    now = [100.0]
    said = RepeatFilter(window_seconds=60, clock=lambda: now[0])
    assert said.first(("U0BOB", "ref", "no")) and not said.first(("U0BOB", "ref", "no"))
    assert said.first(("U0ALICE", "ref", "no")) and said.first(("U0BOB", "ref2", "no"))
    now[0] += 61
    assert said.first(("U0BOB", "ref", "no"))


def test_the_sandbox_sends_typed_text_as_slack_does() -> None:
    users, channels = {"bob": "U0BOB"}, {"random": "C0RANDOM"}
    assert wire_text("Tom & Jerry <3 @bob #random @channel", users, channels) == (
        "Tom &amp; Jerry &lt;3 <@U0BOB> <#C0RANDOM|random> <!channel>"
    )
    assert wire_text("<!channel> a@bob.example #nope", users, channels) == (
        "&lt;!channel&gt; a@bob.example #nope"
    )


def test_home_and_approvals_lines_write_invisible_characters_out_too() -> None:
    line = summarize_args({"text": "pay \u202eredro\u202c"})
    assert line == "text=pay ⟨U+202E⟩redro⟨U+202C⟩"
