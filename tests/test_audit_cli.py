"""``python -m bot audit`` against the real test database: each format parses back, the
filters reach the query, and the database is found from the environment as the bot finds it."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import stat
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from bot import audit_cli
from bot.audit import COLUMNS, AuditEvent, AuditLog
from bot.migrations import migrate_bot
from graph.db import open_pool


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot audit")
    audit_cli.add_arguments(parser)
    return parser.parse_args(argv)


async def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await audit_cli.run(parse(*argv), out)
    return code, out.getvalue()


@pytest.fixture
async def trail(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Three events of a tool only this test uses; the CLI finds the database via the env."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    tool = f"post_message_{uuid.uuid4().hex[:8]}"
    async with open_pool(database_url, max_size=2) as pool:
        await migrate_bot(pool)
        log = AuditLog(pool)
        base = {"thread_id": "slack:T:C:1.0", "interrupt_id": "i1", "tool_call_id": "c1"}
        await log.record(
            AuditEvent(
                "requested",
                tool_name=tool,
                proposed_args={"text": 'hi, "all"\nsecond line'},
                requested_by="U0CAROL",
                **base,
            )
        )
        await log.record(
            AuditEvent(
                "approved",
                tool_name=tool,
                proposed_args={"text": "hi"},
                executed_args={"text": "hi"},
                requested_by="U0CAROL",
                decided_by="U0ALICE",
                **base,
            )
        )
        await log.record(
            AuditEvent(
                "refused", tool_name=tool, decided_by="U0BOB", detail="not an approver", **base
            )
        )
    return tool


async def test_jsonl_has_one_object_per_event_with_iso_times(trail: str) -> None:
    code, out = await run("--tool", trail, "--format", "jsonl")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["outcome"] for r in rows] == ["requested", "approved", "refused"]
    assert rows[0]["proposed_args"] == {"text": 'hi, "all"\nsecond line'}
    assert rows[1]["executed_args"] == {"text": "hi"}
    assert set(rows[0]) == set(COLUMNS)
    assert rows[0]["at"].endswith("+00:00") and "T" in rows[0]["at"]


async def test_csv_round_trips_including_commas_quotes_and_newlines(trail: str) -> None:
    code, out = await run("--tool", trail, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(COLUMNS)
    assert [r["outcome"] for r in rows] == ["requested", "approved", "refused"]
    assert json.loads(rows[0]["proposed_args"]) == {"text": 'hi, "all"\nsecond line'}
    assert rows[2]["proposed_args"] == "" and rows[2]["detail"] == "not an approver"


async def test_filters_by_user_outcome_and_limit(trail: str) -> None:
    async def outcomes(*argv: str) -> list[str]:
        code, out = await run("--tool", trail, "--format", "jsonl", *argv)
        assert code == 0
        return [json.loads(line)["outcome"] for line in out.splitlines()]

    assert await outcomes("--user", "U0ALICE") == ["approved"]
    assert await outcomes("--user", "U0CAROL") == ["requested", "approved"]
    assert await outcomes("--outcome", "refused") == ["refused"]
    assert await outcomes("--limit", "2") == ["approved", "refused"]
    assert await outcomes("--since", "2000-01-01", "--until", "2000-01-01") == []
    assert len(await outcomes("--since", "2000-01-01T00:00:00Z")) == 3


async def test_until_a_bare_date_includes_that_whole_day(trail: str) -> None:
    code, out = await run("--tool", trail, "--format", "jsonl")
    today = json.loads(out.splitlines()[0])["at"][:10]
    code, out = await run("--tool", trail, "--format", "jsonl", "--since", today, "--until", today)
    assert code == 0 and len(out.splitlines()) == 3


async def test_table_is_aligned_and_says_how_many(trail: str) -> None:
    code, out = await run("--tool", trail)
    assert code == 0
    header, rule, *rows, total = out.splitlines()
    assert header.split() == [
        "at",
        "outcome",
        "tool",
        "requested_by",
        "decided_by",
        "thread_id",
        "detail",
    ]
    assert set(rule.replace(" ", "")) == {"-"}
    assert len(rows) == 3 and all(trail in row for row in rows)
    assert rows[2].index("refused") == header.index("outcome")
    assert total == "3 events (times in UTC)"
    _, none = await run("--tool", trail + "-missing")
    assert none == "no audit events match\n"


async def test_output_file(trail: str, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    code, out = await run("--tool", trail, "--format", "jsonl", "--output", str(target))
    assert code == 0 and out == f"wrote 3 events to {target}\n"
    assert len(target.read_text(encoding="utf-8").splitlines()) == 3


async def test_a_fresh_database_gets_the_table_and_an_empty_answer(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"audit_fresh_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("DATABASE_URL", make_conninfo(database_url, dbname=name))
    try:
        code, out = await run()
        assert (code, out) == (0, "no audit events match\n")
        code, out = await run("--format", "csv")
        assert code == 0 and out.splitlines() == [",".join(COLUMNS)]
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


async def test_an_unreadable_database_fails_with_a_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(url: str, *, max_size: int = 20) -> object:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    monkeypatch.setattr(audit_cli, "open_pool", unreachable)
    code, out = await run("--format", "jsonl")
    assert code == 1 and out == ""
    assert "cannot read the audit trail: OperationalError" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ("--since", "yesterday"),
        ("--until", "2024-13-01"),
        ("--limit", "0"),
        ("--format", "xml"),
        ("--outcome", "approve"),
    ],
)
def test_bad_arguments_are_refused_by_the_parser(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_neutralises_cells_that_start_like_a_formula(start: str) -> None:
    attack = f'{start}HYPERLINK("https://evil.example","x")'
    rows = [{"outcome": "refused", "tool_name": attack, "detail": attack, "decided_by": "U0BOB"}]
    out = io.StringIO()
    audit_cli.write_csv(rows, out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["tool_name"] == "'" + attack and row["detail"] == "'" + attack
    assert row["decided_by"] == "U0BOB" and row["outcome"] == "refused"


def test_csv_leaves_json_arguments_and_plain_text_alone() -> None:
    rows = [{"proposed_args": {"text": "=1+1"}, "detail": "kept as typed"}]
    out = io.StringIO()
    audit_cli.write_csv(rows, out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert json.loads(row["proposed_args"]) == {"text": "=1+1"}
    assert row["detail"] == "kept as typed"


async def test_an_export_to_a_pipe_or_device_writes_into_it_and_leaves_it_in_place(
    trail: str, tmp_path: Path
) -> None:
    """``--output /dev/null`` (the scale benchmark does it) or a named pipe is written in place:
    the write-beside-then-rename that protects regular files would replace the device itself
    (as root, it once turned /dev/null into a regular file). A FIFO stands in for the device."""
    fifo = tmp_path / "export.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so the export's open never blocks
    try:
        code, out = await run("--tool", trail, "--format", "jsonl", "--output", str(fifo))
        received = os.read(reader, 1 << 16).decode()  # three events fit the pipe's buffer
    finally:
        os.close(reader)
    assert code == 0, out
    assert stat.S_ISFIFO(fifo.stat().st_mode), "the pipe was replaced by a file"
    assert [json.loads(line)["outcome"] for line in received.splitlines()] == [
        "requested",
        "approved",
        "refused",
    ]
    assert not (tmp_path / "export.fifo.partial").exists()
