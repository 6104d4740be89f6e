"""The policy file: every setting, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.policy import DAY, Policy, PolicyError, ToolPolicy, load_policy, parse_policy

EXAMPLE = """\
[defaults]
approvers = ["S0APPROVERS"]
four_eyes = true
ttl = "24h"

[tools.post_message]
quorum = 2
ttl = "30m"
remind_before = "10m"
redact = ["text"]

[tools.weather_search]
mode = "auto"
"""


def test_defaults_and_per_tool_settings() -> None:
    policy = parse_policy(EXAMPLE)
    post = policy.for_tool("post_message")
    assert post == ToolPolicy(
        mode="review",
        approvers=frozenset({"S0APPROVERS"}),
        four_eyes=True,
        quorum=2,
        ttl_seconds=1800,
        remind_before_seconds=600,
        redact=frozenset({"text"}),
    )
    assert policy.for_tool("create_channel").ttl_seconds == DAY
    assert policy.auto_approved() == ("weather_search",)
    assert post.redacted({"text": "secret", "channel": "#x"}) == {
        "text": "[redacted]",
        "channel": "#x",
    }


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[defaults]\nquorum = 0\n", 2, "quorum must be a whole number"),
        ("[defaults]\nttl = 'soon'\n", 2, "duration"),
        ("[tools.post_message]\nmode = 'sometimes'\n", 2, "mode must be"),
        ("\n[tools.x]\nbogus = 1\n", 3, "unknown setting 'bogus'"),
        ("[defaults]\napprovers = ['alice']\n", 2, "Slack user ids"),
        ("[defaults]\nfour_eyes = 'yes'\n", 2, "true or false"),
        ("[policy]\nx = 1\n", 1, "unknown table"),
        ("[defaults]\nredact = 'text'\n", 2, "list of argument names"),
    ],
)
def test_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "policy.toml")
    assert f"policy.toml, line {line}" in str(error.value)
    assert words in str(error.value)


def test_syntax_errors_and_missing_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="line 1"):
        parse_policy("[defaults\n")
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.toml")


def test_unknown_tools_are_refused_at_start() -> None:
    with pytest.raises(PolicyError, match="no tool named nope"):
        parse_policy("[tools.nope]\nquorum = 2\n").check_tools(["post_message"])


def test_approvers_shorthand_fills_what_the_file_leaves_open() -> None:
    policy = parse_policy("[tools.post_message]\napprovers = ['U0ALICE']\n").with_approvers(
        {"*": frozenset({"U0BOB"}), "create_channel": frozenset({"U0CAROL"})}
    )
    assert policy.for_tool("post_message").approvers == {"U0ALICE"}
    assert policy.for_tool("weather_search").approvers == {"U0BOB"}
    assert policy.for_tool("create_channel").approvers == {"U0CAROL"}
    assert Policy().for_tool("anything").approvers is None
