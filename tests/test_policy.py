"""The policy file: every setting, and errors that name the line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import BotSettings
from bot.policy import DAY, Policy, PolicyError, ToolPolicy, load_policy, parse_policy
from graph.tools.registry import build_registry
from graph.types import ModeRule

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
    assert policy.mode_rules("p.toml") == (
        ModeRule(
            "weather_search", "auto", 'policy file p.toml [tools.weather_search] mode = "auto"'
        ),
    )
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
        ("[defaults]\nfour_eyes = true\nmode = 'auto'\n", 3, "belongs in a [tools.<name>]"),
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


def test_approvers_shorthand_never_replaces_the_files_defaults() -> None:
    """Regression: ``APPROVERS=post_message=U1`` used to replace ``[defaults] approvers`` for
    post_message, although the README says it only fills tools the file leaves open."""
    policy = parse_policy("[defaults]\napprovers = ['S0LEADS']\n", "p.toml")
    with pytest.raises(PolicyError) as error:
        policy.with_approvers({"post_message": frozenset({"U0MALLORY"})}, "p.toml")
    assert "APPROVERS entry 'post_message' conflicts with p.toml [defaults] approvers" in str(
        error.value
    )
    named = parse_policy("[tools.post_message]\napprovers = ['U0ALICE']\n", "p.toml")
    with pytest.raises(PolicyError, match=r"p.toml \[tools.post_message\] approvers"):
        named.with_approvers({"post_message": frozenset({"U0MALLORY"})}, "p.toml")
    with pytest.raises(PolicyError, match=r"'\*' would change nothing: p.toml \[defaults\]"):
        policy.with_approvers({"*": frozenset({"U0MALLORY"})}, "p.toml")
    # What the file leaves open is still filled, including tools with a table of their own.
    open_file = parse_policy("[tools.post_message]\nquorum = 2\n")
    filled = open_file.with_approvers({"post_message": frozenset({"U0BOB"})})
    assert filled.for_tool("post_message") == ToolPolicy(approvers=frozenset({"U0BOB"}), quorum=2)
    assert filled.for_tool("weather_search").approvers is None


def test_the_settings_refuse_to_start_on_an_approvers_conflict(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[defaults]\napprovers = ['S0LEADS']\n")
    settings = BotSettings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
            "POLICY_FILE": str(path),
            "APPROVERS": "post_message=U0MALLORY",
        }
    )
    with pytest.raises(PolicyError, match=f"{path} \\[defaults\\] approvers"):
        settings.load_policy()


FORCED = """\
[tools.post_message]
mode = "review"

[tools.create_channel]
quorum = 2
"""


def settings_for(policy_text: str, tmp_path: Path, **env: str) -> BotSettings:
    path = tmp_path / "policy.toml"
    path.write_text(policy_text)
    return BotSettings.from_env(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "POLICY_FILE": str(path), **env}
    )


def test_a_review_written_in_the_file_beats_agent_auto_approve(tmp_path: Path) -> None:
    settings = settings_for(FORCED, tmp_path, AGENT_AUTO_APPROVE="post_message,create_channel")
    agent = settings.agent_with(settings.load_policy())
    registry = build_registry(agent.tool_modules, agent.auto_approve, agent.mode_rules)
    assert registry.policy("post_message") == "review"
    assert registry.auto_rule("post_message") is None
    # The file says nothing about create_channel's mode: the environment's auto stands.
    assert registry.auto_rule("create_channel") == "AGENT_AUTO_APPROVE"
    [warning] = registry.overruled
    assert f'policy file {settings.policy_file} [tools.post_message] mode = "review"' in warning
    assert "AGENT_AUTO_APPROVE" in warning


def test_a_review_default_in_the_file_beats_every_auto_source(tmp_path: Path) -> None:
    text = '[defaults]\nmode = "review"\n\n[tools.weather_search]\nmode = "auto"\n'
    settings = settings_for(text, tmp_path, AGENT_AUTO_APPROVE="post_message")
    agent = settings.agent_with(settings.load_policy())
    registry = build_registry((), agent.auto_approve, agent.mode_rules)
    assert registry.policy("post_message") == "review"
    assert registry.auto_rule("weather_search") == (
        f'policy file {settings.policy_file} [tools.weather_search] mode = "auto"'
    )


def test_the_policy_files_auto_names_its_line_for_the_audit(tmp_path: Path) -> None:
    settings = settings_for('[tools.weather_search]\nmode = "auto"\n', tmp_path)
    agent = settings.agent_with(settings.load_policy())
    registry = build_registry((), agent.auto_approve, agent.mode_rules)
    assert registry.auto_rule("weather_search") == (
        f'policy file {settings.policy_file} [tools.weather_search] mode = "auto"'
    )
    assert registry.policy("post_message") == "review"


def test_a_review_in_the_file_beats_a_modules_review_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "policy_mod_tools.py").write_text(
        "from langchain_core.tools import tool\n"
        "@tool\n"
        "def wipe(q: str) -> str:\n"
        '    """Wipe something."""\n'
        "    return q\n"
        "@tool\n"
        "def peek(q: str) -> str:\n"
        '    """Look at something."""\n'
        "    return q\n"
        'REVIEW_POLICY = {"wipe": "auto", "peek": "auto"}\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    text = '[tools.wipe]\nmode = "review"\n'
    settings = settings_for(text, tmp_path, AGENT_TOOL_MODULES="policy_mod_tools")
    agent = settings.agent_with(settings.load_policy())
    registry = build_registry(agent.tool_modules, agent.auto_approve, agent.mode_rules)
    assert registry.policy("wipe") == "review"
    assert registry.auto_rule("peek") == "policy_mod_tools.REVIEW_POLICY"
    assert "policy_mod_tools.REVIEW_POLICY" in registry.overruled[0]


async def test_the_running_agent_honours_a_forced_review(tmp_path: Path, database_url: str) -> None:
    """Regression: ``mode = "review"`` with ``AGENT_AUTO_APPROVE=post_message`` ran unreviewed."""
    from graph import open_agent

    settings = settings_for(FORCED, tmp_path, AGENT_AUTO_APPROVE="post_message")
    agent = replace(settings.agent_with(settings.load_policy()), database_url=database_url)
    async with open_agent(agent) as service:
        assert service.registry.policy("post_message") == "review"


def test_the_readme_example_is_a_valid_policy() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Policy") :]
    example = section[section.index("```toml") + len("```toml") : section.index("```\n", 10)]
    policy = parse_policy(example, "README")
    registry = build_registry((), ("create_channel",), policy.mode_rules("README"))
    policy.check_tools(registry.names)
    assert registry.policy("create_channel") == "review"
    assert registry.auto_rule("weather_search") == (
        'policy file README [tools.weather_search] mode = "auto"'
    )
