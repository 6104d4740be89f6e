"""``python -m bot audit`` exports in constant memory: every format is written as a
server-side cursor reads it (the table spools its aligned rows to a temporary file), so a trail
of millions of events never sits in the process; ``audit verify`` reads the same way.

Measured two ways. The export process's peak RSS (``ru_maxrss`` of a wrapper's only child) over
a trail of 100,000 events of about 0.6 kB each, against the same command matching nothing: held
in memory, those events alone would take several hundred MB. And the fetches themselves: every
export and ``verify`` of a 2,500-event trail reads it in ``FETCH``es of at most 1,000 rows,
never all at once.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot import audit_cli
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


async def fill(url: str, events: int = EVENTS) -> None:
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
            (events,),
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
        table_out = tmp_path / "trail.txt"
        table_peak = await peak_rss_kb(url, "--output", str(table_out))

    with out.open() as lines:
        count = sum(1 for _ in lines)
    assert count == EVENTS
    first = json.loads(out.open().readline())
    assert first["thread_id"] == "slack:T:C:1" and first["executed_args"]["text"] == "y" * 250
    assert sum(1 for _ in csv_out.open()) == EVENTS + 1  # and the header
    assert sum(1 for _ in table_out.open()) == EVENTS + 3  # headers, rule and count
    assert not (tmp_path / "trail.jsonl.partial").exists()
    for name, kb in (("jsonl", peak), ("csv", csv_peak), ("table", table_peak)):
        growth_mb = (kb - baseline) / 1024
        assert growth_mb < GROWTH_BOUND_MB, (
            f"{name} export of {EVENTS:,} events grew the process by {growth_mb:.0f} MB "
            f"(peak {kb / 1024:.0f} MB, {baseline / 1024:.0f} MB matching nothing)"
        )


FETCHED_EVENTS = 2_500
BATCH = 1000


@pytest.mark.timeout(300)
async def test_every_export_and_verify_fetch_the_trail_a_batch_at_a_time(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each command's rows come from a server-side cursor in ``FETCH``es of ``BATCH`` rows:
    what the process holds is one batch, whatever the trail's size; any ``fetchall`` (the
    migrations' bookkeeping, the chain's heads) reads a handful of rows."""
    fetched: list[tuple[int, int]] = []  # (asked for, got)
    whole: list[int] = []  # rows each fetchall returned
    fetchmany = psycopg.AsyncServerCursor.fetchmany
    fetchall = psycopg.AsyncCursor.fetchall
    server_fetchall = psycopg.AsyncServerCursor.fetchall

    async def observed(self: psycopg.AsyncServerCursor[Any], size: int = 0) -> list[Any]:
        rows = await fetchmany(self, size)
        fetched.append((size, len(rows)))
        return rows

    async def counted(self: psycopg.AsyncCursor[Any]) -> list[Any]:
        if isinstance(self, psycopg.AsyncServerCursor):
            rows = await server_fetchall(self)
        else:
            rows = await fetchall(self)
        whole.append(len(rows))
        return rows

    monkeypatch.setattr(psycopg.AsyncServerCursor, "fetchmany", observed)
    monkeypatch.setattr(psycopg.AsyncCursor, "fetchall", counted)
    monkeypatch.setattr(psycopg.AsyncServerCursor, "fetchall", counted)
    parser = argparse.ArgumentParser()
    audit_cli.add_arguments(parser)
    commands = {  # name: (arguments, lines written, rows read)
        "table": (["--format", "table"], FETCHED_EVENTS + 3, FETCHED_EVENTS),
        "latest 2,001": (["--format", "jsonl", "--limit", "2001"], 2001, 2001),
        "jsonl": (["--format", "jsonl"], FETCHED_EVENTS, FETCHED_EVENTS),
        "csv": (["--format", "csv"], FETCHED_EVENTS + 1, FETCHED_EVENTS),
        "verify": (["verify"], 2, FETCHED_EVENTS),
    }
    async with fresh_database(database_url, prefix="fetch") as url:
        await fill(url, FETCHED_EVENTS)
        monkeypatch.setenv("DATABASE_URL", url)
        for name, (argv, lines, rows) in commands.items():
            fetched.clear()
            whole.clear()
            out = io.StringIO()
            assert await audit_cli.run(parser.parse_args(argv), out) == 0, name
            assert out.getvalue().count("\n") == lines, (name, out.getvalue()[-300:])
            assert max(whole, default=0) < 50, (name, "fetchall", whole)
            assert sum(got for _, got in fetched) == rows, (name, fetched)
            assert {asked for asked, _ in fetched} == {BATCH}, (name, fetched)
            assert len(fetched) == -(-rows // BATCH), (name, fetched)
