"""The edges of the pure decision-path functions that mutation testing (``./dev mutate``,
docs/mutation.md) found untested: each test here kills a mutant that survived the first run."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.policy import PolicyError, ToolPolicy, load_policy, parse_policy
from bot.review import rules, states
from graph.decisions import (
    EXPIRY_ACTOR,
    Approve,
    Edit,
    Expire,
    Feedback,
    from_stored,
    from_wire,
    to_wire,
)


def test_a_where_with_two_statuses_allows_starting_from_either() -> None:
    sql = "UPDATE slack_reviews SET status = 'decided' WHERE status = 'pending' OR status = 'x'"
    assert states.statuses_changed(sql) == ("decided", {"pending", "x"})


def test_register_must_be_an_insert_that_sets_no_status() -> None:
    update = "UPDATE slack_reviews SET heartbeat_at = now() WHERE ref = %s"
    with pytest.raises(states.IllegalTransition, match="register"):
        states.check_sql("register", update)
    insert = "INSERT INTO slack_reviews (ref) VALUES (%s)"
    assert states.check_sql("register", insert) == insert


def test_a_refused_statement_is_named_with_what_it_would_write() -> None:
    sql = "UPDATE slack_reviews SET status = 'decided' WHERE ref = %s"
    with pytest.raises(states.IllegalTransition) as refused:
        states.check_sql("claim", sql)
    assert str(refused.value).startswith("claim: statement does not match the table (decided,")


@pytest.mark.parametrize(
    ("ttl", "span"),
    [(3600, "1 hours"), (5400, "1.5 hours"), (7200, "2 hours"), (1800, "30 minutes")],
)
def test_the_agent_is_told_how_long_the_review_waited(ttl: float, span: str) -> None:
    assert rules.expiry_words(ttl) == (
        f"No one approved this call within {span}, so it was not run. Do not try it again "
        "unless the user asks."
    )


def test_a_late_clicker_is_told_the_expiry_in_utc_whatever_the_clock_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the process's own zone is not UTC either
    time.tzset()
    try:
        oslo = timezone(timedelta(hours=1))
        at = datetime(2026, 12, 1, 13, 30, 5, tzinfo=oslo)
        assert rules.expired_text(at) == (
            "This review expired at 2026-12-01 12:30:05 UTC, so nothing was run. "
            "Ask the agent again if it is still needed."
        )
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    "wire",
    [
        {"action": "feedback", "data": {"text": "a mapping is not feedback"}},
        {"action": "update", "data": "a string is not an edit"},
        {"action": "nonsense", "data": "words"},
        {"action": "nonsense", "data": {"a": 1}},
    ],
)
def test_a_resume_value_that_is_not_a_decision_is_none(wire: dict[str, object]) -> None:
    assert from_wire(wire) is None


def test_only_a_string_names_who_decided() -> None:
    assert from_wire({"action": "continue", "by": 42}) == Approve(None)
    assert from_wire({"action": "continue", "by": "U1"}) == Approve("U1")
    assert from_wire({"action": "feedback", "data": "late", "by": EXPIRY_ACTOR}) == Expire("late")


def test_a_stored_row_with_missing_columns_reads_as_empty_not_invented() -> None:
    assert from_stored("update", "U1", "not a mapping", None) == Edit({}, "U1")
    assert from_stored("update", "U1", {"a": 1}, None) == Edit({"a": 1}, "U1")
    assert from_stored("feedback", "U1", None, None) == Feedback("", "U1")
    assert from_stored("expired", None, None, None) == Expire("")


# -- bot/policy.py: the numbers and names that decide who approves, how many, how long --------


@pytest.mark.parametrize(("written", "seconds"), [("30", 30.0), ("0.5", 0.5), ("1", 1.0)])
def test_a_bare_number_is_seconds(written: str, seconds: float) -> None:
    assert parse_policy(f"[defaults]\nttl = {written}\n").defaults.ttl_seconds == seconds


@pytest.mark.parametrize("written", ["0", "true", '"0m"', '"-5m"', '"30"'])
def test_a_duration_that_is_not_positive_or_has_no_unit_is_refused(written: str) -> None:
    with pytest.raises(PolicyError, match=r'p.toml, line 2: a duration like "30m"'):
        parse_policy(f"[defaults]\nttl = {written}\n", "p.toml")


def test_remind_before_is_read_and_its_errors_name_its_line() -> None:
    policy = parse_policy('[tools.post_message]\nremind_before = "2h"\n')
    assert policy.for_tool("post_message").remind_before_seconds == 7200
    with pytest.raises(PolicyError, match=r"p.toml, line 3: a duration"):
        parse_policy('[tools.post_message]\nquorum = 2\nremind_before = "x"\n', "p.toml")


@pytest.mark.parametrize(
    ("written", "allowed"),
    [("1", True), ("10", True), ("0", False), ("11", False), ("true", False)],
)
def test_a_quorum_is_a_whole_number_from_one_to_ten(written: str, allowed: bool) -> None:
    text = f"[tools.post_message]\nquorum = {written}\n"
    if allowed:
        assert parse_policy(text).for_tool("post_message").quorum == int(written)
    else:
        with pytest.raises(PolicyError, match="quorum"):
            parse_policy(text)


def test_approvers_for_every_tool_fill_tables_that_name_none() -> None:
    policy = parse_policy("[tools.post_message]\nquorum = 2\n").with_approvers(
        {"*": frozenset({"U0BOB"})}
    )
    assert policy.for_tool("post_message") == ToolPolicy(approvers=frozenset({"U0BOB"}), quorum=2)
    assert "*" not in policy.tools  # "*" is the defaults, not a tool


def test_no_approvers_shorthand_leaves_the_files_defaults_alone() -> None:
    policy = parse_policy("[defaults]\napprovers = ['S0LEADS']\n").with_approvers({})
    assert policy.for_tool("anything").approvers == {"S0LEADS"}


def test_a_star_entry_over_file_defaults_is_refused_in_one_sentence() -> None:
    policy = parse_policy("[defaults]\napprovers = ['S0LEADS']\n", "p.toml")
    with pytest.raises(PolicyError) as error:
        policy.with_approvers({"*": frozenset({"U0MALLORY"})}, "p.toml")
    assert str(error.value) == (
        "APPROVERS entry '*' would change nothing: p.toml [defaults] approvers already decides "
        "who approves every tool (keep one of the two)"
    )


MCP_NOTES = '[mcp.servers.notes]\ncommand = "x"\n'


@pytest.mark.parametrize("table", ['"notes.add"', "notes__add", '"notes.*"', '"notes.a.b"'])
def test_a_table_may_name_a_tool_of_a_configured_server(table: str) -> None:
    policy = parse_policy(f'{MCP_NOTES}[tools.{table}]\nmode = "review"\n', "p.toml", env={})
    policy.check_tools(["weather_search"], "p.toml")  # the server is down: no tools known


@pytest.mark.parametrize("table", ['"other.add"', "other__add", '"add.notes.x"', "notes_add"])
def test_a_table_naming_no_configured_server_or_tool_is_refused(table: str) -> None:
    policy = parse_policy(f'{MCP_NOTES}[tools.{table}]\nmode = "review"\n', "p.toml", env={})
    with pytest.raises(PolicyError, match=r"p\.toml: no tool named"):
        policy.check_tools(["weather_search"], "p.toml")


def test_an_unknown_tool_is_refused_naming_it_and_the_known_ones() -> None:
    policy = parse_policy("[tools.a]\nquorum = 2\n[tools.b]\nquorum = 2\n")
    with pytest.raises(PolicyError) as error:
        policy.check_tools(["y", "x"])
    assert str(error.value) == "policy: no tool named a, b (known: x, y)"


def test_a_pattern_applies_only_to_the_tools_it_matches() -> None:
    text = (
        '[mcp.servers.github]\ncommand = "x"\n[mcp.servers.notes]\ncommand = "y"\n'
        "[tools.\"github.*\"]\napprovers = ['S0RELEASE']\n"
    )
    catalog = {"github__merge": ("github.merge", {}), "notes__add": ("notes.add", {})}
    resolved = parse_policy(text, "p.toml", env={}).with_mcp_tools(catalog)
    assert resolved.for_tool("github__merge").approvers == {"S0RELEASE"}
    assert resolved.for_tool("notes__add").approvers is None


def test_the_mcp_table_holds_only_servers() -> None:
    with pytest.raises(PolicyError, match=r"\[mcp\] holds only \[mcp.servers.<name>\] tables"):
        parse_policy('[mcp]\nretries = 3\n[mcp.servers.notes]\ncommand = "x"\n', env={})
    with pytest.raises(PolicyError, match=r"\[mcp.servers\] must contain one table per server"):
        parse_policy("[mcp]\nservers = 3\n", env={})


def test_errors_name_the_default_source_and_the_file_they_come_from(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"^policy, line 2: unknown setting 'colour'"):
        parse_policy("[defaults]\ncolour = 1\n")
    path = tmp_path / "p.toml"
    path.write_text("[defaults]\nquorum = 0\n")
    with pytest.raises(PolicyError, match=rf"^{re.escape(str(path))}, line 2: quorum"):
        load_policy(path)


def test_the_audit_rule_names_the_table_as_written_in_the_file() -> None:
    text = (
        '[mcp.servers.notes]\ncommand = "x"\n[tools."notes.*"]\nmode = "auto"\n'
        '[tools."notes.add"]\nmode = "review"\n[tools.post_message]\nmode = "review"\n'
    )
    sources = [rule.source for rule in parse_policy(text, env={}).mode_rules("p.toml")]
    assert sources == [
        'policy file p.toml [tools."notes.*"] mode = "auto"',
        'policy file p.toml [tools."notes.add"] mode = "review"',
        'policy file p.toml [tools.post_message] mode = "review"',
    ]


def test_destructive_quorum_reaches_tools_with_no_table_and_only_their_server() -> None:
    text = '[mcp.servers.notes]\ncommand = "x"\ndestructive_quorum = 2\n'
    catalog = {
        "notes__wipe": ("notes.wipe", {"destructiveHint": True}),
        "notes__a.b": ("notes.a.b", {"destructiveHint": True}),  # a tool name holding a dot
        "solo__wipe": ("solo.wipe", {"destructiveHint": True}),  # no such server configured
    }
    resolved = parse_policy(text, env={}).with_mcp_tools(catalog)
    assert resolved.for_tool("notes__wipe").quorum == 2
    assert resolved.for_tool("notes__a.b").quorum == 2
    assert resolved.for_tool("solo__wipe").quorum == 1


# -- bot/policy.py: what an operator reads when the bot refuses to start ----------------------


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("[tools]\npost_message = 3\n", "p.toml: expected a table of settings"),
        ("defaults = 3\n", "p.toml: expected a table of settings"),
        ("tools = 3\n", "p.toml: [tools] must contain one table per tool"),
        (
            "colour = 1\n",
            "p.toml: unknown table [colour] (use [defaults], [tools.<name>] and "
            "[mcp.servers.<name>])",
        ),
        (
            "[defaults]\ncolour = 1\n",
            "p.toml, line 2: unknown setting 'colour' (use: approvers, channel, "
            "escalate_after, escalate_to, four_eyes, grants, mode, quorum, redact, "
            "remind_before, review_channel, ttl)",
        ),
        (
            '[defaults]\nmode = "auto"\n',
            'p.toml, line 2: mode = "auto" belongs in a [tools.<name>] table; as a default it '
            "would run every tool, including ones added later, unreviewed",
        ),
        (
            "[tools.deploy]\napprovers = ['bob']\n",
            "p.toml, line 2: approvers must be a list of Slack user ids (U..., W...) or user "
            "group ids (S...)",
        ),
        (
            '[defaults]\nquorum = 1\n[mcp]\nretries = 3\n[mcp.servers.notes]\ncommand = "x"\n',
            "p.toml, line 3: [mcp] holds only [mcp.servers.<name>] tables",
        ),
    ],
)
def test_a_refusal_to_start_says_where_and_what_in_one_sentence(text: str, refusal: str) -> None:
    """Where no line holds the mistake (a value where a table belongs), the file alone."""
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "p.toml", env={})
    assert str(error.value) == refusal


def test_a_setting_written_as_its_own_table_is_placed_at_its_tools_table() -> None:
    """The search for ``grants =`` stops at the next table header: the one it would find
    further down is another tool's."""
    text = (
        '[tools.deploy]\nmode = "review"\n[tools.deploy.grants]\nmax_uses = 0\n'
        "[tools.other]\ngrants = false\n"
    )
    with pytest.raises(PolicyError) as error:
        parse_policy(text)
    assert str(error.value) == (
        'policy, line 1: grants must be { max_duration = "1h", max_uses = 10 } (or false)'
    )


def test_every_approvers_conflict_is_named_in_one_refusal() -> None:
    policy = parse_policy(
        "[defaults]\napprovers = ['S0LEADS']\n[tools.deploy]\napprovers = ['U0ANN']\n"
    )
    with pytest.raises(PolicyError) as error:
        policy.with_approvers({"deploy": frozenset({"U0BOB"}), "*": frozenset({"U0BOB"})})
    assert str(error.value) == (
        "APPROVERS entry 'deploy' conflicts with policy [tools.deploy] approvers; "
        "APPROVERS entry '*' would change nothing: policy [defaults] approvers already "
        "decides who approves every tool (keep one of the two)"
    )


def test_a_name_is_a_pattern_only_with_a_wildcard_character() -> None:
    """``*``, ``?`` and ``[`` make a pattern (written quoted); a capital X is a letter."""
    policy = parse_policy("[tools.Xport]\napprovers = ['U0ANN']\n")
    with pytest.raises(PolicyError, match=r"conflicts with policy \[tools\.Xport\] approvers"):
        policy.with_approvers({"Xport": frozenset({"U0BOB"})})


def test_a_digest_survives_the_wire_and_the_row_and_only_as_a_string() -> None:
    """The digest binds an approval to the arguments approved: it must reach the graph."""
    approve, edit = Approve("U0A", "d1"), Edit({"x": 1}, "U0A", "d2")
    assert to_wire(approve) == {"action": "continue", "by": "U0A", "digest": "d1"}
    assert to_wire(edit) == {"action": "update", "data": {"x": 1}, "by": "U0A", "digest": "d2"}
    assert from_wire(to_wire(approve)) == approve and from_wire(to_wire(edit)) == edit
    assert from_wire({"action": "continue", "digest": 5}) == Approve()
    assert from_stored("continue", "U0A", None, None, "d1") == approve
    assert from_stored("update", "U0A", {"x": 1}, None, "d2") == edit


LEGACY_RULES = """\
[tools.refund]
redact = ["card"]

[[tools.refund.rules]]
name = "carol in C0, 2020"
when = 'requester == "U0CAROL" && channel == "C0" && time.getFullYear() == 2020'
quorum = 3
"""

IN_2020 = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)


def test_a_review_without_a_stored_rule_is_resolved_from_its_own_facts() -> None:
    """A row from before rules were stored, and an edit of it: the requester, the channel and
    the creation time of the review decide, not who or when asks later."""
    policy = parse_policy(LEGACY_RULES, "p.toml")
    facts = {"requester": "U0CAROL", "channel": "C0", "created": IN_2020}
    args = {"amount": 1}
    assert policy.for_stored("refund", None, args, **facts).policy.quorum == 3
    assert policy.for_review("refund", None, args, None, **facts).policy.quorum == 3
    for who, where in (("U0BOB", "C0"), ("U0CAROL", "C1")):
        late = policy.for_stored(
            "refund", None, args, requester=who, channel=where, created=IN_2020
        )
        assert late.policy.quorum == 1
    assert policy.for_stored("refund", None, args, **{**facts, "created": None}).rule is None


def test_an_edit_is_resolved_with_the_reviews_requester_channel_and_time() -> None:
    text = LEGACY_RULES.replace("[tools.refund]", "[tools.refund]\nttl = '2h'")
    policy = parse_policy(text, "p.toml")
    facts = {"requester": "U0CAROL", "channel": "C0", "created": IN_2020}
    before = policy.for_call("refund", {"amount": 1}, requester="U0BOB", channel="C0", now=IN_2020)
    assert before.rule is None
    after = policy.for_review("refund", before.stored(), {"amount": 1}, {"amount": 2}, **facts)
    assert after.policy.quorum == 3 and after.edited == "carol in C0, 2020 (rule 1)"


def test_a_tool_without_rules_has_its_own_policy_and_redactions() -> None:
    text = '[tools.refund]\nquorum = 2\nredact = ["card"]\n[tools.other]\n'
    policy = parse_policy(text, "p.toml")
    assert policy.for_call("refund", {"card": "4111"}).policy.quorum == 2
    assert policy.redacts("refund") == {"card"}
    gone = policy.for_stored(
        "refund", {"rule": "old"}, {}, requester=None, channel=None, created=IN_2020
    )
    assert gone.failed == "the rule 'old' is no longer in the policy file"
    assert gone.policy.quorum == 2
    edited = policy.for_review("refund", {"rule": "old"}, {"a": 1}, {"a": 2}, **FACTS)
    assert edited == gone  # an edit adds nothing to a tool without rules
    same = policy.for_review("refund", None, {"a": 1}, {"a": 2}, **FACTS)
    assert same == policy.for_call("refund", {"a": 1})


FACTS: dict[str, Any] = {"requester": None, "channel": None, "created": IN_2020}


def test_every_rule_that_would_lift_a_modules_review_is_named_on_its_own_line() -> None:
    text = (
        '[tools.wipe]\nmode = "auto"\n\n[[tools.wipe.rules]]\nwhen = "true"\nquorum = 2\n\n'
        '[[tools.wipe.rules]]\nwhen = "false"\nttl = "1h"\n'
    )
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "p.toml").check_auto_rules({"wipe": "mod.REVIEW_POLICY"})
    assert str(error.value) == "\n".join(
        f'p.toml, line {line}: mode = "auto" cannot lift the review mod.REVIEW_POLICY asks '
        "for (review wins; remove one of the two)"
        for line in (5, 9)
    )


def test_every_type_error_of_the_rules_is_named_on_its_own_line() -> None:
    text = "[tools.refund]\n[[tools.refund.rules]]\nwhen = 'args.a > 1'\n"
    text += "[[tools.refund.rules]]\nwhen = 'args.b > 1'\n"
    schema = {"type": "object", "properties": {"c": {"type": "integer"}}}
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "p.toml").check_rules({"refund": schema})
    lines = str(error.value).split("\n")
    assert [line.split(":")[0] for line in lines] == ["p.toml, line 3", "p.toml, line 5"]


def test_a_tool_with_rules_is_reviewed_by_the_agent_naming_the_file() -> None:
    text = '[tools.refund]\nmode = "auto"\n[[tools.refund.rules]]\nwhen = "true"\nmode = "review"\n'
    words = [(r.tool, r.policy, r.source) for r in parse_policy(text).mode_rules("p.toml")]
    assert words == [
        ("refund", "auto", 'policy file p.toml [tools.refund] mode = "auto"'),
        ("refund", "review", "policy file p.toml [tools.refund] rules (decided per call)"),
    ]


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        (
            "[tools.refund]\nrules = 1\n",
            "p.toml, line 2: rules is a list of tables: [[tools.refund.rules]]",
        ),
        (
            "[tools.refund]\nrules = [1]\n",
            "p.toml, line 2: rules is a list of tables: [[tools.refund.rules]]",
        ),
        ("[tools]\nrefund = { rules = 1 }\n", "p.toml: rules is a list of tables"),
        (
            "tools = { refund = { rules = [{ when = 'a >' }] } }\n",
            "p.toml: cannot parse the condition 'a >'",
        ),
        (
            "[tools.refund]\nttl = '1h'\nrules = [{ when = 'true', quorum = 0 }]\n",
            "p.toml, line 3: quorum must be a whole number from 1 to 10",
        ),
        (
            "[tools.refund]\n[[tools.refund.rules]]\nwhen = 'true'\ngrants.max_uses = 0\n"
            "grants.max_duration = '1h'\n[[tools.refund.rules]]\nwhen = 'true'\n"
            "grants = { max_uses = 1, max_duration = '1h' }\n",
            "p.toml, line 2: max_uses must be a whole number from 1 to 1000",
        ),
        (
            "[tools.refund]\n[[tools.refund.rules]]\nwhen = 'true'\nchannel = 'x'\n",
            "p.toml, line 4: channel must be a channel name",
        ),
        ("[mcp]\nservers = 1\n", "p.toml: [mcp.servers] must contain one table per server"),
        (
            "[tools.refund]\nreview_channel = 'x'\n",
            "p.toml, line 2: review_channel must be a channel name",
        ),
        (
            "[tools.refund]\ngrants = { max_uses = true, max_duration = '1h' }\n",
            "p.toml, line 2: max_uses must be",
        ),
        (
            "[tools.refund]\nescalate_to = []\n",
            "p.toml, line 2: escalate_to must be a non-empty "
            "list of Slack user ids (U..., W...) or user group ids (S...)",
        ),
        (
            "[tools.refund]\nescalate_to = ['U0A']\nescalate_after = 'soon'\n",
            "p.toml, line 3: a duration like",
        ),
        (
            "[tools.refund]\nttl = '1h'\nescalate_after = '5m'\n",
            "p.toml, line 3: escalate_after needs escalate_to (whom)",
        ),
        (
            "[tools.refund]\nttl = '1h'\nescalate_to = ['U0A']\n",
            "p.toml, line 3: escalate_to needs escalate_after (when)",
        ),
        (
            "[tools.refund]\nttl = '1h'\nescalate_to = ['U0A']\nescalate_after = '1h'\n",
            "p.toml, line 4: escalate_after must be shorter than ttl, or the review expires "
            "before anyone is pinged",
        ),
        (
            "[defaults]\nttl = '1h'\n[tools.refund]\nescalate_to = ['U0A']\n"
            "escalate_after = '2h'\n",
            "p.toml, line 5: escalate_after must be shorter than ttl",
        ),
        (
            "[defaults]\nescalate_to = ['U0A']\nescalate_after = '30m'\n[tools.refund]\n"
            "ttl = '10m'\n",
            "p.toml, line 4: escalate_after must be shorter than ttl",
        ),
    ],
)
def test_each_refusal_of_a_rule_or_a_setting_names_its_line(text: str, refusal: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "p.toml")
    assert str(error.value).startswith(refusal)


@pytest.mark.parametrize("uses", [1, 1000])
def test_a_grant_may_allow_from_one_to_a_thousand_uses(uses: int) -> None:
    text = f"[tools.refund]\ngrants = {{ max_uses = {uses}, max_duration = '1h' }}\n"
    limits = parse_policy(text).for_tool("refund").grants
    assert limits is not None and limits.max_uses == uses


def test_a_type_error_in_an_mcp_tools_rule_names_the_tool_as_people_read_it() -> None:
    text = (
        "[mcp.servers.github]\ncommand = 'true'\n\n"
        '[tools."github.*"]\n[[tools."github.*".rules]]\nwhen = "args.nope > 1"\n'
    )
    policy = parse_policy(text, "p.toml", env={}).with_mcp_tools(
        {"github__merge": ("github.merge", {})}
    )
    schema = {"type": "object", "properties": {"pr": {"type": "integer"}}}
    with pytest.raises(PolicyError) as error:
        policy.check_rules({"github__merge": schema})
    assert str(error.value) == (
        "p.toml, line 6: the arguments of github.merge have no 'nope' (known: pr)"
    )
