"""The benchmark runs end to end at CI size and reports every figure (no timing thresholds:
this machine's speed is not what the test suite checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.report import FIGURES

ROOT = Path(__file__).resolve().parent.parent


def test_the_throughput_target_is_a_ratio_to_bare_langgraph() -> None:
    """Targets that move with the machine are stated against bare LangGraph, same run."""
    assert {
        "bare LangGraph resume p50",
        "bare LangGraph sustained resumes",
        "sustained approvals / bare sustained resumes",
        "click->applied p50 / bare resume p50",
        "long / 1-turn resume",
    } <= set(FIGURES)


def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    markdown = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--markdown", str(markdown)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    printed = {line.split("|")[1].strip() for line in rows}
    missing = [figure for figure in FIGURES if figure not in printed]
    assert not missing, f"figures not printed: {missing}\n{done.stdout}"
    for line in rows[2:]:
        measured = line.split("|")[2].strip()
        assert measured and measured != "n/a" and "nan" not in measured, line
    written = markdown.read_text()
    assert "Machine:" in written and "Command: `python -m bench --quick" in written
    assert all(figure in written for figure in FIGURES)


SCALE_FIGURES = (
    "App Home scan (newest 1,000 pending)",
    "sweeper queries, nothing due",
    "sweeper queries, 1,000 due",
    "audit export, everything (jsonl)",
    "audit verify, everything",
    "prune --older-than 90d of the year",
    "migrate (nothing pending)",
)


def test_scale_mode_runs_at_a_small_factor() -> None:
    """``--scale`` is not run in CI at full size; at 1/1000 it checks that every figure comes."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "--scale-factor", "0.001"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = {line.split("|")[1].strip() for line in done.stdout.splitlines() if line[:2] == "| "}
    assert set(SCALE_FIGURES) <= printed, done.stdout
