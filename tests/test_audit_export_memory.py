"""``python -m bot audit`` exports in constant memory: JSON lines and CSV are written as a
server-side cursor reads them, so a trail of millions of events never sits in the process.

Measured as the export process's peak RSS (``ru_maxrss`` of a wrapper's only child) over a
trail of 100,000 events of about 0.6 kB each, against the same command matching nothing. Held
in memory, those events alone would take several hundred MB.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import psycopg
import pytest

from bot.migrations import migrate_bot
from graph.db import open_pool
from tests.support.chaos import fresh_database

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 100_000
GROWTH_BOUND_MB = 40

PEAK_RSS = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


async def peak_rss_kb(url: str, *args: str) -> int:
    """Run ``python -m bot audit ARGS`` alone under a fresh wrapper; its peak RSS in kB."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PEAK_RSS,
        sys.executable,
        "-m",
        "bot",
        "audit",
        *args,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    code, peak = out.decode().split()
    assert code == "0", f"python -m bot audit {' '.join(args)} exited {code}"
    return int(peak)


async def fill(url: str) -> None:
    async with open_pool(url, max_size=2) as pool:
        await migrate_bot(pool)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            """
            INSERT INTO audit_events (outcome, thread_id, interrupt_id, tool_call_id, tool_name,
                                      proposed_args, executed_args, requested_by, detail)
            SELECT 'approved', 'slack:T:C:' || g, 'i' || g, 'toolu_' || g, 'post_message',
                   jsonb_build_object('channel', '#general', 'text', repeat('x', 250)),
                   jsonb_build_object('channel', '#general', 'text', repeat('y', 250)),
                   'U0ALICE', 'bulk'
            FROM generate_series(1, %s) AS g
            """,
            (EVENTS,),
        )


@pytest.mark.timeout(600)
async def test_an_export_of_the_whole_trail_runs_in_constant_memory(
    database_url: str, tmp_path: Path
) -> None:
    async with fresh_database(database_url, prefix="export") as url:
        await fill(url)
        baseline = await peak_rss_kb(url, "--format", "jsonl", "--tool", "no_such_tool")
        out = tmp_path / "trail.jsonl"
        peak = await peak_rss_kb(url, "--format", "jsonl", "--output", str(out))
        csv_out = tmp_path / "trail.csv"
        csv_peak = await peak_rss_kb(url, "--format", "csv", "--output", str(csv_out))

    with out.open() as lines:
        count = sum(1 for _ in lines)
    assert count == EVENTS
    first = json.loads(out.open().readline())
    assert first["thread_id"] == "slack:T:C:1" and first["executed_args"]["text"] == "y" * 250
    assert sum(1 for _ in csv_out.open()) == EVENTS + 1  # and the header
    assert not (tmp_path / "trail.jsonl.partial").exists()
    for name, kb in (("jsonl", peak), ("csv", csv_peak)):
        growth_mb = (kb - baseline) / 1024
        assert growth_mb < GROWTH_BOUND_MB, (
            f"{name} export of {EVENTS:,} events grew the process by {growth_mb:.0f} MB "
            f"(peak {kb / 1024:.0f} MB, {baseline / 1024:.0f} MB matching nothing)"
        )
