"""The small things around the product: ``./dev``'s help, ``.gitignore``, Bolt's start-up
warning, and a SIGTERM to the test session leaving no PostgreSQL behind."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from bot.app import build_app, slack_client
from bot.config import BotSettings

ROOT = Path(__file__).resolve().parent.parent


def test_dev_without_arguments_prints_only_its_help() -> None:
    done = subprocess.run(
        [str(ROOT / "dev")], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("One entry point"), lines
    assert all(line.startswith("  ./dev ") for line in lines[1:]), lines
    assert "set -euo pipefail" not in done.stdout and "#" not in done.stdout
    assert {line.split()[0] + " " + line.split()[1] for line in lines[1:]} >= {
        "./dev test",
        "./dev demo",
    }


def test_langgraph_dev_state_is_ignored() -> None:
    assert ".langgraph_api/" in (ROOT / ".gitignore").read_text().splitlines()


def test_building_the_app_warns_about_nothing(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bolt falls back to SLACK_BOT_TOKEN when given no token, then warns that the client we
    pass wins: with the variable set (as in every deployment) nothing may be logged."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    settings = BotSettings(bot_token="xoxb-from-env", signing_secret="secret")
    client = slack_client(settings)
    with caplog.at_level(logging.DEBUG, logger="slack_bolt"):
        parts = SimpleNamespace(turns=None, clicks=None, lister=None, standing=None)  # read by none
        app = build_app(settings, client, flow=parts)  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert app.client is client and app.client.token == "xoxb-from-env"


TINY_SESSION = """
import os, time
from pathlib import Path

def test_waits_to_be_killed(database_url):
    Path(os.environ["READY_FILE"]).write_text(database_url)
    time.sleep(120)
"""


def postgres_serving(directory: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if process.info["name"] == "postgres" and str(directory) in cmdline:
            found.append(process)
    return found


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="no embedded server")
def test_sigterm_to_the_test_session_stops_postgres_and_removes_its_data() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="approval-bot-sigterm-"))
    scratch.chmod(0o755)  # the server runs as another system user when we are root
    (scratch / "test_tiny.py").write_text(textwrap.dedent(TINY_SESSION))
    ready = scratch / "ready"
    env = {
        **os.environ,
        "TMPDIR": str(scratch),
        "READY_FILE": str(ready),
        "PYTHONPATH": str(ROOT),
    }
    plugins = ("-p", "no:cacheprovider", "-p", "tests.conftest")  # the real session fixture
    session = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-q", *plugins, "--rootdir", str(scratch)),
            *("-o", "timeout=0", str(scratch / "test_tiny.py")),
        ],
        cwd=scratch,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # a cold start of the server on a busy machine
        while not ready.exists() and session.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists(), session.communicate(timeout=30)[0] if session.poll() else "slow"
        [data_dir] = [p for p in scratch.iterdir() if p.name.startswith("approval-bot-test-pg-")]
        assert postgres_serving(data_dir), "the session's server is not running"
        session.send_signal(signal.SIGTERM)
        output, _ = session.communicate(timeout=60)
        psutil.wait_procs(postgres_serving(data_dir), timeout=10)
        left = postgres_serving(data_dir)
        assert left == [], f"postgres still running after SIGTERM: {output}"
        assert not data_dir.exists(), f"data left behind: {output}"
        assert "KeyboardInterrupt" in output, output
    finally:
        if session.poll() is None:
            session.kill()
        for process in postgres_serving(scratch):  # a failed run leaves nothing either
            process.terminate()
        shutil.rmtree(scratch, ignore_errors=True)
