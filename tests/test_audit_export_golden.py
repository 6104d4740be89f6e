"""``python -m bot audit`` writes exactly what it wrote before it streamed: every format, a
filter, ``--limit`` and ``audit verify``, compared byte for byte with files recorded from the
export as it was (``tests/golden/``).

A database of its own gets a fixed trail (fixed times, so ids, chain sequences and hashes are
the same every run): arguments already redacted by the policy (the export shows what is stored,
and redacts nothing itself), text that looks like a spreadsheet formula, commas, quotes,
newlines, non-ASCII text, empty fields and cells longer than the table shows.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from bot import audit_cli
from bot.migrations import migrate_bot
from graph.db import open_pool
from tests.support.chaos import fresh_database

GOLDEN = Path(__file__).resolve().parent / "golden"

EVENTS: tuple[tuple[object, ...], ...] = (
    # at, outcome, thread_id, tool_name, proposed_args, executed_args, requested_by,
    # decided_by, detail
    (
        "2026-03-01T09:00:00.000001Z",
        "requested",
        "slack:T1:C1:1.0",
        "post_message",
        {"channel": "#general", "text": 'hi, "all"\nsecond line — ünïcödé'},
        None,
        "U0CAROL",
        None,
        None,
    ),
    (
        "2026-03-01T09:01:30Z",
        "approved",
        "slack:T1:C1:1.0",
        "post_message",
        {"channel": "#general", "text": "hi"},
        {"channel": "#general", "text": "hi"},
        "U0CAROL",
        "U0ALICE",
        '=HYPERLINK("http://example.invalid") ' + "long detail " * 8,
    ),
    (
        "2026-03-02T10:00:00Z",
        "auto_approved",
        "slack:T2:C9:2.0",
        "deploy",
        {"service": "api", "token": "[redacted]"},
        {"service": "api", "token": "[redacted]"},
        "U0BOB",
        None,
        "rule: deploy api on weekdays",
    ),
    (
        "2026-03-03T11:00:00Z",
        "refused",
        "cli:local",
        "post_message",
        None,
        None,
        None,
        "U0BOB",
        "-not an approver",
    ),
)

EXPORTS: dict[str, tuple[str, ...]] = {
    "all.jsonl": ("--format", "jsonl"),
    "all.csv": ("--format", "csv"),
    "all.txt": ("--format", "table"),
    "bob.jsonl": ("--format", "jsonl", "--user", "U0BOB"),
    "latest2.csv": ("--format", "csv", "--limit", "2"),
    "latest2.txt": ("--limit", "2"),
    "march2.jsonl": ("--format", "jsonl", "--since", "2026-03-02", "--until", "2026-03-02"),
    "nothing.txt": ("--tool", "no_such_tool"),
}


async def fill(url: str) -> None:
    async with open_pool(url, max_size=2) as pool:
        await migrate_bot(pool)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for at, outcome, thread, tool, proposed, executed, asker, decider, detail in EVENTS:
            await conn.execute(
                """
                INSERT INTO audit_events (at, outcome, thread_id, interrupt_id, tool_call_id,
                    tool_name, proposed_args, executed_args, requested_by, decided_by, detail)
                VALUES (%s, %s, %s, 'int-1', 'toolu_1', %s, %s, %s, %s, %s, %s)
                """,
                (
                    at,
                    outcome,
                    thread,
                    tool,
                    None if proposed is None else Jsonb(proposed),
                    None if executed is None else Jsonb(executed),
                    asker,
                    decider,
                    detail,
                ),
            )


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot audit")
    audit_cli.add_arguments(parser)
    return parser.parse_args(argv)


async def exports(url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every export of :data:`EXPORTS` and ``audit verify``, as written to standard output."""
    monkeypatch.setenv("DATABASE_URL", url)
    written: dict[str, str] = {}
    for name, argv in {**EXPORTS, "verify.txt": ("verify",)}.items():
        out = io.StringIO()
        assert await audit_cli.run(parse(*argv), out) == 0, name
        written[name] = out.getvalue()
    return written


async def test_every_export_is_byte_for_byte_what_it_was(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fresh_database(database_url, prefix="golden") as url:
        await fill(url)
        written = await exports(url, monkeypatch)
    for name, text in written.items():
        expected = (GOLDEN / f"audit_{name}").read_bytes().decode("utf-8")
        assert text == expected, f"{name} differs from tests/golden/audit_{name}"
    assert "[redacted]" in written["all.jsonl"] and "U0BOB" in written["bob.jsonl"]
