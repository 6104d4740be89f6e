"""The container image, minus Docker: no engine runs here, so this replays the Dockerfile's build
stage (its COPY and RUN lines, parsed from the Dockerfile itself) into a clean virtual
environment, then runs the result the way the final stage does: from an empty directory, with the
image's ENV, ``python -m bot``. If the Dockerfile forgets a package or a file, this fails."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox.config import SandboxConfig
from sandbox.server import running_sandbox

ROOT = Path(__file__).resolve().parent.parent
IMAGE_VENV = "/opt/venv"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "FROM":
            found.append([])
        found[-1].append((keyword, rest))
    return found


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def python312() -> str:
    """The image's Python version when this machine has it, else the running interpreter."""
    candidates = [
        shutil.which("python3.12"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
        sys.executable,
    ]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return sys.executable


def replay_build_stage(stage: list[tuple[str, str]], workdir: Path, venv: Path) -> None:
    """Run the build stage's COPY and RUN lines with the image's venv path mapped to ``venv``.

    ``python`` on PATH is the image's Python version. ENV lines only tune pip's cache and
    bytecode writing, so they are left out (and pip's local cache keeps repeat runs fast).
    """
    shim = workdir.parent / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(python312())
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    for keyword, rest in stage:
        if keyword == "COPY":
            *sources, target = shlex.split(rest)
            assert not any(s.startswith("--") for s in sources), "build stage copies the context"
            for source in sources:
                destination = workdir / target
                if target.endswith("/") or target in (".", "./"):
                    destination = destination / Path(source).name
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source,
                        destination,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    )
                else:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / source, destination)
        elif keyword == "RUN":
            command = rest.replace(IMAGE_VENV, str(venv))
            done = subprocess.run(
                command, shell=True, cwd=workdir, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, f"RUN {rest} failed:\n{done.stdout}\n{done.stderr}"


def read(path: Path) -> str:
    """A finished or still-growing log file (small; read synchronously)."""
    return path.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ok(
    client: httpx.AsyncClient, url: str, process: asyncio.subprocess.Process, log: Path
) -> int:
    """Poll until the URL answers (the process may still be starting); a dead process fails."""
    for _ in range(600):
        if process.returncode is not None:
            raise AssertionError(f"the bot exited with {process.returncode}:\n{read(log)}")
        try:
            return (await client.get(url)).status_code
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


@pytest.mark.timeout(900)
async def test_dockerfile_install_runs_and_answers_health_checks(
    tmp_path: Path, database_url: str
) -> None:
    build, final = stages(ROOT / "Dockerfile")
    workdir = tmp_path / "src"
    workdir.mkdir()
    venv = tmp_path / "venv"
    await asyncio.to_thread(replay_build_stage, build, workdir, venv)
    assert (venv / "bin" / "python").exists(), "the build stage must create the image's venv"
    assert ("COPY", f"--from=build {IMAGE_VENV} {IMAGE_VENV}") in final
    cmd = next(rest for keyword, rest in final if keyword == "CMD")
    assert json.loads(cmd) == ["python", "-m", "bot"]
    assert any(keyword == "USER" and not rest.startswith(("root", "0")) for keyword, rest in final)

    # The final stage: nothing of the source tree around, only the installed venv.
    home = tmp_path / "home"
    home.mkdir()
    image_env = {
        name: value.replace(IMAGE_VENV, str(venv)).replace("$PATH", os.environ["PATH"])
        for name, value in env_of(final).items()
    }
    base = {"PATH": image_env.pop("PATH"), "HOME": str(home), "LANG": "C.UTF-8"}
    helped = await asyncio.to_thread(
        subprocess.run,
        ["python", "-m", "bot", "--help"],
        cwd=home,
        env={**base, **image_env},
        capture_output=True,
        text=True,
    )
    assert helped.returncode == 0, helped.stderr
    assert "SLACK_BOT_TOKEN" in helped.stdout and "migrate" in helped.stdout

    port = free_port()
    async with running_sandbox(
        SandboxConfig(port=0, bot_url=f"http://127.0.0.1:{port}/slack/events")
    ) as sandbox:
        env = {
            **base,
            **image_env,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "SLACK_BOT_TOKEN": sandbox.config.bot_token,
            "SLACK_SIGNING_SECRET": sandbox.config.signing_secret,
            "SLACK_API_URL": sandbox.api_url,
            "DATABASE_URL": database_url,
        }
        log_file = tmp_path / "bot.log"
        with log_file.open("w") as log:
            process = await asyncio.create_subprocess_exec(
                "python", "-m", "bot", cwd=home, env=env, stdout=log, stderr=log
            )
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=10
                ) as client:
                    health = await wait_ok(client, "/healthz", process, log_file)
                    ready = (await client.get("/readyz")).status_code
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 60)
    stderr = log_file.read_text()
    assert (health, ready) == (200, 200), stderr
    assert process.returncode == 0, stderr
    # The image logs JSON (ENV LOG_FORMAT=json): every line is one object.
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["message"] for line in lines), stderr
