"""Rules on arguments: parsing, the first match, every condition variable, type errors at load
(naming the line), run-time errors failing closed, edits, and the agent's word on review."""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from celpy.evaluation import CELEvalError

from bot.policy import Policy, PolicyError, ToolPolicy, parse_policy
from bot.policy_rules import (
    CallPolicy,
    ConditionError,
    RuleFailed,
    activation,
    combined,
    compile_condition,
    strictest,
)
from graph.tools.registry import args_schema, build_registry

REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer"},
        "currency": {"type": "string"},
        "reason": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["amount", "currency"],
}

REFUNDS = """\
[defaults]
approvers = ["U0ALICE", "U0BOB"]

[tools.refund]
ttl = "2h"

[[tools.refund.rules]]
name = "refund over 1,000"
when = "args.amount > 1000"
approvers = ["S0FINANCE"]
quorum = 2

[[tools.refund.rules]]
when = 'args.reason.startsWith("vip")'
four_eyes = true
ttl = "30m"
redact = ["reason"]
"""

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def refunds() -> Policy:
    policy = parse_policy(REFUNDS, "p.toml")
    policy.check_rules({"refund": REFUND_SCHEMA})
    return policy


def call(policy: Policy, args: dict[str, Any], **facts: Any) -> CallPolicy:
    facts.setdefault("now", NOON)
    return policy.for_call("refund", args, **facts)


def test_the_first_rule_that_holds_applies_over_the_tools_policy() -> None:
    policy = refunds()
    big = call(policy, {"amount": 5000, "currency": "EUR", "reason": "vip"})
    assert (big.rule, big.index) == ("refund over 1,000", 1)  # both hold: the first wins
    assert big.policy == ToolPolicy(approvers=frozenset({"S0FINANCE"}), quorum=2, ttl_seconds=7200)
    assert big.label == "refund over 1,000 (rule 1)"
    vip = call(policy, {"amount": 5, "currency": "EUR", "reason": "vip client"})
    assert vip.rule == "rule 2 of tool refund" and vip.label == "rule 2 of tool refund"
    assert vip.policy.four_eyes and vip.policy.ttl_seconds == 1800
    assert vip.policy.approvers == {"U0ALICE", "U0BOB"}  # the rest from the tool's policy
    assert vip.policy.redact == {"reason"}


def test_no_rule_holding_leaves_the_tools_own_policy() -> None:
    policy = refunds()
    plain = call(policy, {"amount": 5, "currency": "EUR", "reason": "late"})
    assert plain.rule is None and plain.failed is None and plain.has_rules
    assert plain.policy == policy.for_tool("refund")
    assert plain.label == "the tool's defaults (no rule matched)"
    other = policy.for_call("weather_search", {"city": "Oslo"})
    assert not other.has_rules and other.policy == policy.for_tool("weather_search")


@pytest.mark.parametrize(
    ("condition", "facts", "holds"),
    [
        ('tool == "refund"', {}, True),
        ('tool == "other"', {}, False),
        ('requester == "U0CAROL"', {"requester": "U0CAROL"}, True),
        ('requester == "U0CAROL"', {"requester": "U0DAN"}, False),
        ('requester == ""', {}, True),  # nobody known: the empty string
        ('channel.startsWith("C0FIN")', {"channel": "C0FINANCE"}, True),
        ('channel.startsWith("C0FIN")', {"channel": "C0GENERAL"}, False),
        ("time.getHours() >= 18 || time.getHours() < 8", {"now": NOON}, False),
        (
            "time.getHours() >= 18 || time.getHours() < 8",
            {"now": datetime(2026, 12, 2, 22, 30, tzinfo=UTC)},
            True,
        ),
        ('time.getDayOfWeek("Europe/Oslo") == 3', {"now": NOON}, True),  # a Wednesday
        ('time > timestamp("2027-01-01T00:00:00Z")', {"now": NOON}, False),
        ('"urgent" in args.tags', {}, True),
        ('args.tags.exists(t, t.startsWith("ur")) && size(args.tags) == 2', {}, True),
        ('has(args.reason) && args.currency != "EUR"', {}, False),
    ],
)
def test_every_condition_variable(condition: str, facts: dict[str, Any], holds: bool) -> None:
    text = f"[tools.refund]\n[[tools.refund.rules]]\nwhen = '{condition}'\nquorum = 3\n"
    policy = parse_policy(text, "p.toml")
    policy.check_rules({"refund": REFUND_SCHEMA})
    args = {"amount": 5, "currency": "EUR", "tags": ["urgent", "b"]}
    facts.setdefault("now", NOON)
    resolved = policy.for_call("refund", args, **facts)
    assert resolved.failed is None
    assert (resolved.policy.quorum == 3) is holds


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ("args.amout > 1000", "the arguments of refund have no 'amout' (known: amount, currency"),
        ('args.amount > "1000"', "cannot compare int with string (>)"),
        ("nofun(args.amount)", "unknown function nofun()"),
        ("args.amount", "must be true or false, not int"),
        ("who == 1", "unknown variable 'who'"),
        ("args.currency.getHours() > 1", ".getHours() needs a timestamp"),
        ("args.amount.startsWith('1')", "string method"),
        ("args.amount + 'x' == 1", "'+' is not defined for int and string"),
        ("has(args.nope)", "have no 'nope'"),
        ("args.tags.all(t, t + 1)", "'+' is not defined for string and int"),
    ],
)
def test_type_errors_stop_the_load_naming_the_line(condition: str, words: str) -> None:
    rule = f"[[tools.refund.rules]]\nquorum = 2\nwhen = '''{condition}'''\n"
    text = f"[tools.refund]\nttl = '1h'\n\n{rule}"
    policy = parse_policy(text, "p.toml")
    with pytest.raises(PolicyError) as error:
        policy.check_rules({"refund": REFUND_SCHEMA})
    assert "p.toml, line 6: " in str(error.value)
    assert words in str(error.value)


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ('when = "args.amount >"', 3, "cannot parse the condition"),
        ("quorum = 2", 2, "a rule needs a condition"),
        ('when = "true"\nquorum = 0', 4, "quorum must be a whole number"),
        ('when = "true"\nbogus = 1', 4, "unknown setting 'bogus'"),
        ('when = "true"\nname = ""', 4, "a rule's name is a non-empty string"),
        ('when = ""', 3, "when must be a CEL condition"),
    ],
)
def test_rule_errors_name_their_line(body: str, line: int, words: str) -> None:
    text = f"[tools.refund]\n[[tools.refund.rules]]\n{body}\n"
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "p.toml")
    assert f"p.toml, line {line}: " in str(error.value) and words in str(error.value)


def test_the_second_rules_errors_point_at_the_second_rule() -> None:
    text = (
        "[tools.refund]\n\n[[tools.refund.rules]]\nwhen = 'true'\n\n"
        "[[tools.refund.rules]]\nname = 'big'\nwhen = 'args.amout > 1'\n"
    )
    with pytest.raises(PolicyError, match=r"p.toml, line 8: .*'amout'"):
        parse_policy(text, "p.toml").check_rules({"refund": REFUND_SCHEMA})
    twice = text.replace("when = 'true'", "name = 'big'\nwhen = 'true'")
    with pytest.raises(PolicyError, match="line 8: two rules of refund are named 'big'"):
        parse_policy(twice, "p.toml")


def test_a_condition_that_fails_at_run_time_fails_closed() -> None:
    policy = refunds()
    # No reason given: rule 1 does not hold, rule 2 cannot be evaluated.
    failed = call(policy, {"amount": 5, "currency": "EUR"})
    assert (
        failed.failed == "rule 2 of tool refund could not be evaluated: no argument or key 'reason'"
    )
    assert failed.rule is None
    strict = failed.policy
    assert strict.mode == "review" and strict.four_eyes
    assert strict.quorum == 2  # the highest of the tool's and its rules'
    assert strict.ttl_seconds == 1800  # the shortest
    assert strict.redact == {"reason"}  # every redaction
    # A decider must be allowed by the tool's approvers and by every rule's.
    assert failed.approver_conditions == (frozenset({"U0ALICE", "U0BOB"}), frozenset({"S0FINANCE"}))
    assert failed.label.startswith("strictest of every rule (failed closed: rule 2")
    wrong_type = call(policy, {"amount": "lots", "currency": "EUR"})
    assert "refund over 1,000 (rule 1) could not be evaluated: a value has a type" in str(
        wrong_type.failed
    )
    assert "lots" not in str(wrong_type.failed)  # values are not quoted (one may be redacted)


def test_a_review_keeps_the_rule_it_was_registered_under() -> None:
    text = (
        "[tools.refund]\n[[tools.refund.rules]]\nname = 'after hours'\n"
        "when = 'time.getHours() >= 18'\nquorum = 2\n"
    )
    policy = parse_policy(text, "p.toml")
    evening = datetime(2026, 12, 2, 19, 0, tzinfo=UTC)
    created = policy.for_call("refund", {"amount": 1}, now=evening)
    assert created.rule == "after hours"
    args = {"amount": 1}
    # Later (the clock says morning): the stored record decides, not the clock.
    later = policy.for_stored(
        "refund", created.stored(), args, requester=None, channel=None, created=evening
    )
    assert later.policy.quorum == 2 and later.rule == "after hours"
    # A row from before rules were stored is resolved at its own creation time.
    legacy = policy.for_stored("refund", None, args, requester=None, channel=None, created=evening)
    assert legacy.rule == "after hours"
    # A rule renamed or removed since fails closed.
    gone = policy.for_stored(
        "refund", {"rule": "old name"}, args, requester=None, channel=None, created=evening
    )
    assert gone.failed and "no longer in the policy file" in gone.failed
    assert gone.policy.quorum == 2 and gone.policy.four_eyes
    failed = policy.for_stored(
        "refund", {"failed": "it broke"}, args, requester=None, channel=None, created=evening
    )
    assert failed.failed == "it broke"


def test_an_edit_under_another_rule_is_held_to_both() -> None:
    policy = refunds()
    args = {"amount": 5, "currency": "EUR", "reason": "late"}
    created = call(policy, args)
    facts: dict[str, Any] = {"requester": "U0CAROL", "channel": "C0", "created": NOON}
    # Edited up to 5,000: the finance rule now applies as well as the defaults.
    both = policy.for_review("refund", created.stored(), args, {**args, "amount": 5000}, **facts)
    assert both.policy.quorum == 2
    assert both.approver_conditions == (frozenset({"U0ALICE", "U0BOB"}), frozenset({"S0FINANCE"}))
    assert (
        both.label
        == "the tool's defaults (no rule matched); after the edit also refund over 1,000 (rule 1)"
    )
    # Edited down from 5,000 to 5: the terms it was proposed under still hold too.
    high = call(policy, {**args, "amount": 5000})
    down = policy.for_review("refund", high.stored(), {**args, "amount": 5000}, args, **facts)
    assert down.policy.quorum == 2 and frozenset({"S0FINANCE"}) in down.approver_conditions
    # An edit within the same rule changes nothing.
    same = policy.for_review("refund", created.stored(), args, {**args, "amount": 6}, **facts)
    assert same == created


def test_strictest_of_no_approvers_and_some_is_the_named_ones() -> None:
    base = ToolPolicy()
    text = "[tools.x]\n[[tools.x.rules]]\nwhen = 'true'\napprovers = ['U0ALICE']\n"
    [rule] = parse_policy(text).rules["x"]
    closed = strictest(base, [rule], "why")
    assert closed.approver_conditions == (frozenset({"U0ALICE"}),)


def test_rules_may_set_the_mode_and_the_agent_reviews_such_tools() -> None:
    text = (
        '[tools.post_message]\nmode = "auto"\n\n[[tools.post_message.rules]]\n'
        'when = \'args.channel == "#general"\'\nmode = "review"\nfour_eyes = true\n'
    )
    policy = parse_policy(text, "p.toml")
    registry = build_registry((), (), policy.mode_rules("p.toml"))
    # Which policy applies is decided per call, so the agent asks for review of every call.
    assert registry.policy("post_message") == "review"
    general = policy.for_call("post_message", {"channel": "#general", "text": "hi"})
    assert general.policy.mode == "review" and general.policy.four_eyes
    assert policy.for_call("post_message", {"channel": "#x", "text": "hi"}).policy.mode == "auto"
    every = (
        '[tools.weather_search]\nmode = "auto"\n'
        '[[tools.weather_search.rules]]\nwhen = "true"\nttl = "1h"\n'
    )
    assert (
        build_registry((), (), parse_policy(every).mode_rules("p")).policy("weather_search")
        == "auto"
    )


def test_mcp_pattern_tables_carry_their_rules_to_each_tool() -> None:
    text = (
        "[mcp.servers.github]\ncommand = 'true'\n\n"
        '[tools."github.*"]\n\n[[tools."github.*".rules]]\nname = \'deletes\'\n'
        "when = 'tool.startsWith(\"github.delete\")'\nquorum = 3\n"
    )
    policy = parse_policy(text, "p.toml", env={})
    resolved = policy.with_mcp_tools(
        {"github__delete_repo": ("github.delete_repo", {}), "github__merge": ("github.merge", {})}
    )
    resolved.check_rules({"github__delete_repo": {"type": "object", "properties": {}}})
    assert resolved.for_call("github__delete_repo", {}).policy.quorum == 3
    assert resolved.for_call("github__merge", {}).rule is None
    with pytest.raises(PolicyError, match=r"p.toml, line 8: unknown variable 'tol'"):
        parse_policy(text.replace("tool.starts", "tol.starts"), "p.toml", env={}).check_rules({})


def test_rules_type_check_against_real_tool_schemas() -> None:
    registry = build_registry()
    schemas = {tool.name: args_schema(tool) for tool in registry.tools}
    good = (
        "[tools.post_message]\n[[tools.post_message.rules]]\n"
        "when = 'args.channel == \"#general\"'\n"
    )
    parse_policy(good).check_rules(schemas)
    with pytest.raises(PolicyError, match="no 'chanel' \\(known: channel, text\\)"):
        parse_policy(good.replace("args.channel", "args.chanel"), "p.toml").check_rules(schemas)


def test_redaction_from_rules_reaches_every_output() -> None:
    from bot import redaction

    policy = refunds()
    assert policy.redacts("refund") == {"reason"}
    assert redaction.redacts_anything(policy)


def _readme_section() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("#### Rules on arguments")
    ends = [i for mark in ("\n### ", "\n#### ") if (i := readme.find(mark, start + 1)) != -1]
    return readme[start : min(ends, default=len(readme))]


def test_the_readme_rules_examples_work_as_described() -> None:
    section = _readme_section()
    examples = [part.split("```", 1)[0] for part in section.split("```toml")[1:]]
    assert len(examples) == 2
    registry = build_registry()
    schemas = {tool.name: args_schema(tool) for tool in registry.tools}
    refund_schema = {"refund": REFUND_SCHEMA}
    refund = parse_policy(examples[0], "README")
    refund.check_rules(refund_schema)
    big = refund.for_call("refund", {"amount": 1500, "currency": "EUR"})
    assert big.policy.approvers == {"S0FINANCE"} and big.policy.quorum == 2
    assert refund.for_call("refund", {"amount": 15, "currency": "EUR"}).policy.quorum == 1
    channels = parse_policy(examples[1], "README")
    channels.check_rules(schemas)
    general = channels.for_call("post_message", {"channel": "#general", "text": "hi"})
    assert general.policy.four_eyes and general.policy.mode == "review"
    sandbox = channels.for_call("post_message", {"channel": "#bot-sandbox", "text": "hi"})
    assert sandbox.policy.mode == "auto"
    other = channels.for_call("post_message", {"channel": "#random", "text": "hi"})
    assert other.policy.mode == "review" and not other.policy.four_eyes


def test_the_cards_policy_line_is_valid_block_kit_and_escaped() -> None:
    from bot import blocks
    from bot.policy_blocks import policy_line
    from tests.support.block_kit import assert_valid_blocks

    name = "<!channel> & " + "a very long rule name " * 200
    text = f"[tools.refund]\n[[tools.refund.rules]]\nname = '{name}'\nwhen = 'true'\n"
    resolved = parse_policy(text).for_call("refund", {"amount": 1})
    line = policy_line(resolved)
    assert line is not None and line.startswith("Policy: &lt;!channel&gt; &amp; a very")
    request: Any = {
        "question": "?",
        "tool_call": {"name": "refund", "args": {"amount": 1}, "id": "c1"},
        "tool": {"name": "refund", "description": "Refund", "args_schema": {}},
        "requested_by": "U0CAROL",
    }
    card = blocks.review_blocks(request, "ref", None, line)
    assert_valid_blocks(card)
    assert any("Policy:" in str(block) for block in card)
    assert policy_line(parse_policy("").for_call("refund", {})) is None  # no rules: no line
    assert blocks.review_blocks(request, "ref") == blocks.review_blocks(request, "ref", None, None)


def test_a_rules_auto_never_lifts_a_modules_review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rules_mod_tools.py").write_text(
        "from langchain_core.tools import tool\n"
        "@tool\n"
        "def wipe(q: str) -> str:\n"
        '    """Wipe something."""\n'
        "    return q\n"
        'REVIEW_POLICY = {"wipe": "review"}\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    text = '[tools.wipe]\n\n[[tools.wipe.rules]]\nwhen = \'args.q == "x"\'\nmode = "auto"\n'
    policy = parse_policy(text, "p.toml")
    registry = build_registry(("rules_mod_tools",), (), policy.mode_rules("p.toml"))
    assert registry.review_source("wipe") == "rules_mod_tools.REVIEW_POLICY"
    sources = {n: s for n in registry.names if (s := registry.review_source(n))}
    with pytest.raises(PolicyError) as error:
        policy.check_auto_rules(sources)
    assert 'p.toml, line 4: mode = "auto" cannot lift the review rules_mod_tools' in str(
        error.value
    )
    # The file's own review (a table's mode, or its rules) may be refined by a rule.
    mine = parse_policy(text.replace("wipe", "post_message").replace("args.q", "args.text"))
    reg = build_registry((), (), mine.mode_rules("p"))
    mine.check_auto_rules({n: s for n in reg.names if (s := reg.review_source(n))})


def test_a_setting_strictest_does_not_know_falls_back_to_its_default() -> None:
    """Settings added later (routing, standing approvals, ...) never loosen a review that
    failed closed: they take the value a tool nobody configured has."""
    import dataclasses

    from bot import policy_rules

    @dataclasses.dataclass(frozen=True)
    class Wider(ToolPolicy):
        standing_grant: str | None = None

    base = Wider(standing_grant="everyone, forever")
    text = "[tools.x]\n[[tools.x.rules]]\nwhen = 'true'\nquorum = 2\n"
    [rule] = parse_policy(text).rules["x"]
    closed = strictest(base, [rule], "why")
    assert isinstance(closed.policy, Wider) and closed.policy.standing_grant is None
    assert closed.policy.quorum == 2
    edited = policy_rules.combined([base, ToolPolicy()])
    assert isinstance(edited, Wider) and edited.standing_grant == "everyone, forever"


# -- the details (mutation testing: docs/mutation.md) ----------------------------------------


def one_rule(condition: str) -> Policy:
    return parse_policy(
        f"[tools.refund]\n[[tools.refund.rules]]\nwhen = '{condition}'\nquorum = 3\n"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("args.amount >", "cannot parse the condition 'args.amount >' at column 13"),
        ("1 2", "cannot parse the condition '1 2' at column 3"),
        ("(", "cannot parse the condition '(' at column 1"),
        (" ", 'when must be a CEL condition, e.g. when = "args.amount > 1000"'),
    ],
)
def test_a_condition_that_does_not_parse_says_where(text: str, words: str) -> None:
    with pytest.raises(ConditionError) as error:
        compile_condition(text)
    assert str(error.value) == words


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        ("args.amount / 0 > 1", "division by zero"),
        ("args.amount % 0 == 1", "division by zero"),
        ("args.amount", "it gave a IntType, not true or false"),
        ("args.nope > 1", "no argument or key 'nope'"),
        ("args.m.k > 1", "no argument or key 'k'"),
        ('{"a": 1}["b"] > 1', "a missing key"),
        ('args.amount > "x"', "a value has a type the condition does not expect"),
        ('int("x") > 1', "the condition failed to evaluate"),
        ("[1][5] > 0", "the condition failed to evaluate"),
    ],
)
def test_a_run_time_failure_says_why_without_values(
    condition: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.policy_rules"):
        failed = one_rule(condition).for_call("refund", {"amount": 5, "m": {"a": 1}}, now=NOON)
    assert failed.failed == f"rule 1 of tool refund could not be evaluated: {why}"
    assert failed.policy.quorum == 3 and failed.policy.four_eyes and failed.has_rules
    assert caplog.messages == [
        f"policy rule 1 of tool refund could not be evaluated: {why}; "
        "the review uses the strictest policy"
    ]


def test_a_rule_built_without_a_program_compiles_its_own_and_names_itself_when_failing() -> None:
    [rule] = one_rule("args.amount > 1").rules["refund"]
    bare = dataclasses.replace(rule, program=None)
    assert bare.holds(activation({"amount": 2}, "refund", None, None, NOON)) is True
    [broken] = one_rule("args.amount").rules["refund"]
    with pytest.raises(RuleFailed) as failure:
        broken.holds(activation({"amount": 2}, "refund", None, None, NOON))
    assert failure.value.rule is broken


def test_a_missing_channel_is_the_empty_string_and_time_is_utc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert one_rule('channel == ""').for_call("refund", {}, now=NOON).policy.quorum == 3
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        utc = one_rule('string(time) == "2026-12-02T12:00:00Z"')
        assert utc.for_call("refund", {}, now=NOON).policy.quorum == 3
    finally:
        monkeypatch.undo()
        time.tzset()


def test_what_a_review_row_keeps_and_what_it_rebuilds() -> None:
    policy = refunds()
    matched = call(policy, {"amount": 5000, "currency": "EUR"})
    assert matched.stored() == {"rule": "refund over 1,000", "index": 1, "failed": None}
    assert matched.has_rules and matched.index == 1
    args = {"amount": 5000, "currency": "EUR"}
    facts: dict[str, Any] = {"requester": None, "channel": None, "created": NOON}
    again = policy.for_stored("refund", matched.stored(), args, **facts)
    assert (again.rule, again.index, again.has_rules) == ("refund over 1,000", 1, True)
    failed = call(policy, {"amount": 5, "currency": "EUR"})
    assert failed.stored()["failed"] == failed.failed
    assert policy.for_stored("refund", failed.stored(), args, **facts).failed == failed.failed
    assert not strictest(ToolPolicy(), [], "why").has_rules


def test_an_edit_out_of_a_failed_review_stays_failed_closed_and_adds_no_four_eyes() -> None:
    policy = refunds()
    args = {"amount": 5, "currency": "EUR", "reason": "late"}
    facts: dict[str, Any] = {"requester": "U0CAROL", "channel": "C0", "created": NOON}
    stored = {"rule": None, "index": None, "failed": "it broke"}
    both = policy.for_review("refund", stored, args, {**args, "amount": 5000}, **facts)
    assert both.failed == "it broke" and both.edited == "refund over 1,000 (rule 1)"
    plain = policy.for_review(
        "refund", call(policy, args).stored(), args, {**args, "amount": 5000}, **facts
    )
    assert plain.policy.four_eyes is False  # neither the defaults nor rule 1 asks for it


def test_combined_is_field_wise_strictest_and_keeps_the_first_policys_other_fields() -> None:
    first = ToolPolicy(ttl_seconds=3600, remind_before_seconds=600, channel="#a")
    second = ToolPolicy(ttl_seconds=1800, remind_before_seconds=300, channel="#b")
    both = combined([first, second])
    assert (both.channel, both.ttl_seconds, both.remind_before_seconds) == ("#a", 1800, 300)
    assert both.four_eyes is False and combined([first], four_eyes=True).four_eyes
    named = ToolPolicy(approvers=frozenset({"U1"}))
    assert combined([ToolPolicy(), named]).approvers == {"U1"}
    assert combined([ToolPolicy(approvers=frozenset({"U2"})), named]).approvers == {"U2"}
    assert combined([ToolPolicy(), ToolPolicy()]).approvers is None


class _Program:
    """A condition's program that fails as given: how celpy may report an error (raised or
    returned, nested or not), beyond what today's conditions make it do."""

    def __init__(self, error: CELEvalError, *, raised: bool = True) -> None:
        self.error, self.raised = error, raised

    def evaluate(self, activation: dict[str, Any]) -> Any:
        if self.raised:
            raise self.error
        return self.error


@pytest.mark.parametrize(
    ("error", "raised", "why"),
    [
        (CELEvalError("x", ZeroDivisionError, None), False, "division by zero"),
        (CELEvalError("only words"), True, "the condition failed to evaluate"),
        (CELEvalError("words", KeyError), True, "the condition failed to evaluate"),
        (
            CELEvalError("outer", CELEvalError, ("inner", ZeroDivisionError, None)),
            True,
            "division by zero",
        ),
        (
            CELEvalError("outer", ValueError, ("inner", ZeroDivisionError, None)),
            True,
            "the condition failed to evaluate",
        ),
    ],
)
def test_every_shape_of_evaluation_error_fails_the_rule_in_words(
    error: CELEvalError, raised: bool, why: str
) -> None:
    [rule] = one_rule("true").rules["refund"]
    failing = dataclasses.replace(rule, program=_Program(error, raised=raised))
    with pytest.raises(RuleFailed) as failure:
        failing.holds(activation({}, "refund", None, None, NOON))
    assert failure.value.rule is failing
    assert str(failure.value) == f"rule 1 of tool refund could not be evaluated: {why}"


def test_an_edit_into_a_failing_condition_fails_closed() -> None:
    policy = refunds()
    args = {"amount": 5, "currency": "EUR", "reason": "late"}
    facts: dict[str, Any] = {"requester": "U0CAROL", "channel": "C0", "created": NOON}
    edited = {"amount": 5, "currency": "EUR"}  # no reason: rule 2 cannot be evaluated
    both = policy.for_review("refund", call(policy, args).stored(), args, edited, **facts)
    assert (
        both.failed == "rule 2 of tool refund could not be evaluated: no argument or key 'reason'"
    )
