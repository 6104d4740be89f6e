"""``python -m bot policy check|explain``, run as people run it (a subprocess, no database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHANNELS = """\
[defaults]
approvers = ["S0APPROVERS"]

[tools.post_message]
ttl = "2h"

[[tools.post_message.rules]]
name = "post to #general"
when = 'args.channel == "#general"'
four_eyes = true
quorum = 2

[[tools.post_message.rules]]
name = "the sandbox runs freely"
when = 'args.channel == "#bot-sandbox"'
mode = "auto"

[[tools.post_message.rules]]
name = "evenings"
when = "time.getHours() >= 18 && requester != 'U0BOSS' && channel == 'C0LATE'"
approvers = ["U0NIGHT"]
"""


def bot(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPROVERS", "AGENT_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_check_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(CHANNELS)
    done = bot("policy", "check", str(path))
    assert done.returncode == 0, done.stderr
    assert f"{path}: ok" in done.stdout and "3 rules" in done.stdout


def test_check_names_the_file_and_line_of_each_mistake(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        CHANNELS.replace('args.channel == "#general"', 'args.chanel == "#general"').replace(
            "time.getHours() >= 18", "time.getHours() >= '18'"
        )
    )
    done = bot("policy", "check", str(path))
    assert done.returncode == 1
    assert f"{path}, line 9: the arguments of post_message have no 'chanel'" in done.stderr
    assert f"{path}, line 20: cannot compare int with string (>=)" in done.stderr
    (tmp_path / "bad.toml").write_text("[tools.nope]\nquorum = 2\n")
    unknown = bot("policy", "check", str(tmp_path / "bad.toml"))
    assert unknown.returncode == 1 and "no tool named nope" in unknown.stderr


def test_explain_says_which_rule_and_on_which_terms(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(CHANNELS)
    general = json.dumps({"channel": "#general", "text": "hi"})
    done = bot("policy", "explain", str(path), "--tool", "post_message", "--args", general,
               "--user", "U0ALICE")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "tool: post_message",
        "rule: post to #general (rule 1)",
        "approvers: S0APPROVERS",
        "quorum: 2",
        "four_eyes: on",
        "ttl: 2h",
    ]
    sandbox = json.dumps({"channel": "#bot-sandbox", "text": "hi"})
    free = bot("policy", "explain", str(path), "--tool", "post_message", "--args", sandbox,
               "--user", "U0ALICE")  # fmt: skip
    assert "rule: the sandbox runs freely (rule 2)" in free.stdout
    assert "mode: auto (runs without review)" in free.stdout
    late = json.dumps({"channel": "#random", "text": "hi"})
    at = ("--channel", "C0LATE", "--time", "2026-12-02T19:00")
    evening = bot("policy", "explain", str(path), "--tool", "post_message", "--args", late,
                  "--user", "U0ALICE", *at)  # fmt: skip
    assert "rule: evenings (rule 3)" in evening.stdout and "approvers: U0NIGHT" in evening.stdout
    boss = bot("policy", "explain", str(path), "--tool", "post_message", "--args", late,
               "--user", "U0BOSS", *at)  # fmt: skip
    assert "rule: the tool's defaults (no rule matched)" in boss.stdout


def test_explain_shows_a_run_time_failure_closed_and_refuses_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(CHANNELS)
    missing = bot("policy", "explain", str(path), "--tool", "post_message", "--args",
                  '{"text": "hi"}', "--user", "U0ALICE")  # fmt: skip
    assert missing.returncode == 0
    assert "failed closed: post to #general (rule 1) could not be evaluated" in missing.stdout
    assert "four_eyes: on" in missing.stdout and "quorum: 2" in missing.stdout
    assert "approvers: S0APPROVERS and also one of U0NIGHT" in missing.stdout
    bad = bot("policy", "explain", str(path), "--tool", "post_message", "--args", "[1]",
              "--user", "U0ALICE")  # fmt: skip
    assert bad.returncode == 1 and "JSON object" in bad.stderr
    nope = bot("policy", "explain", str(path), "--tool", "nope", "--args", "{}", "--user", "U")
    assert nope.returncode == 1 and "no tool named nope" in nope.stderr


def test_help_lists_the_policy_commands() -> None:
    done = bot("--help")
    assert "policy     check a policy file" in done.stdout
    sub = bot("policy", "explain", "--help")
    assert "--tool" in sub.stdout and "--channel" in sub.stdout


def test_the_bot_refuses_to_start_on_a_rule_typo_naming_the_line(tmp_path: Path) -> None:
    """Before a database is opened or Slack is reached: exit 2, the file and line named."""
    path = tmp_path / "policy.toml"
    path.write_text(CHANNELS.replace("time.getHours()", "time.getHour()"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPROVERS", "AGENT_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="secret",
        POLICY_FILE=str(path),
        DATABASE_URL="postgresql://nobody@127.0.0.1:9/none",  # never reached
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"configuration error: {path}, line 20: unknown method .getHour()" in done.stderr
