"""``python -m bot audit``: read or export the audit trail; ``audit verify`` checks its chain.

An auditor asks "who approved what, when"; an operator pipes the answer into a spreadsheet or a
log pipeline. So the same filters feed three formats: a table for eyes, JSON lines for tools,
CSV for spreadsheets. The database is found exactly as the bot finds it (``DATABASE_URL``, else
the embedded server in ``DATA_DIR``), and the audit table is created first, so asking before the
bot ever ran gives an empty answer instead of an error.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bot.audit import COLUMNS, OUTCOMES, AuditLog
from bot.audit_chain import verify
from bot.migrations import migrate_bot
from graph.config import AgentSettings
from graph.db import open_pool, resolve_database_url

FORMATS = ("table", "jsonl", "csv")
TABLE_COLUMNS = ("at", "outcome", "tool_name", "requested_by", "decided_by", "thread_id", "detail")
TABLE_CELL = 48
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _moment(text: str, *, end_of_day: bool) -> datetime:
    """An ISO 8601 date or datetime; naive means UTC. A bare date given as ``--until`` means
    the whole of that day (its following midnight), which is what a person typing
    ``--since 2024-05-01 --until 2024-05-01`` expects."""
    try:
        if _DATE_ONLY.match(text):
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or datetime: {text!r} (e.g. 2024-05-01 or 2024-05-01T13:30Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _since(text: str) -> datetime:
    return _moment(text, end_of_day=False)


def _until(text: str) -> datetime:
    return _moment(text, end_of_day=True)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more (got {text!r})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``audit`` command's options (the caller owns the parser and its sub-commands)."""
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument("--tool", help="only calls of this tool")
    parser.add_argument("--user", help="only events this Slack user id asked for or decided")
    parser.add_argument("--outcome", choices=OUTCOMES, help="only this outcome")
    parser.add_argument(
        "--since", type=_since, help="from this ISO 8601 date or datetime on (UTC unless given)"
    )
    parser.add_argument(
        "--until",
        type=_until,
        help="before this ISO 8601 datetime; a bare date includes that whole day",
    )
    parser.add_argument("--limit", type=_positive, help="only the latest N matching events")
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="write to FILE instead of standard output"
    )
    commands = parser.add_subparsers(dest="audit_command", metavar="{verify}")
    commands.add_parser(
        "verify",
        help="check the trail's hash chain: exit 0 if intact, 1 naming the first broken link",
        description="Recompute every audit event's hash, per workspace, from the previous "
        "event's hash and its own content, stepping over sanctioned retention cuts. Prints "
        "each workspace's head if the trail is intact (exit 0); else the first broken link: "
        "the event id and what is wrong (a deleted, reordered or altered event; exit 1). "
        "Exit 2 if the database cannot be read.",
    )


def _plain(value: Any) -> Any:
    """A value as JSON can carry it: timestamps in ISO 8601 (UTC), hashes in hex, the rest
    unchanged."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes | memoryview):  # the chain's hashes
        return bytes(value).hex()
    return value


def jsonl_line(row: dict[str, Any]) -> str:
    return json.dumps({k: _plain(v) for k, v in row.items()}, ensure_ascii=False) + "\n"


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> None:
    for row in rows:
        out.write(jsonl_line(row))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A text cell a spreadsheet will not run: one that starts like a formula (``=``, ``+``,
    ``-``, ``@``, tab, carriage return) gets a leading single quote, as OWASP's CSV injection
    advice says. The quote is visible and marks the cell as text; nothing else changes."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def csv_cells(row: dict[str, Any]) -> list[Any]:
    """One row's cells: arguments as JSON text, formula-like text neutralised."""
    cells = []
    for name in COLUMNS:
        value = _plain(row.get(name))
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        if isinstance(value, str):
            value = spreadsheet_safe(value)
        cells.append("" if value is None else value)
    return cells


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> None:
    """One column per field; arguments as JSON text, so the file round-trips. Text cells that
    start like a formula are neutralised (`spreadsheet_safe`); numbers are left as numbers."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(csv_cells(row))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= TABLE_CELL else text[: TABLE_CELL - 1] + "…"


class TableSpool:
    """The table for a terminal, in constant memory. Its columns' widths are known only once
    every row was seen, so the rows wait in a temporary file, one line of tab-separated cells
    each (a cell holds neither tabs nor newlines: :func:`_cell` folds all whitespace into
    single spaces), and are aligned as they are read back. Made by :func:`table_spool`, which
    removes the file afterwards."""

    HEADERS: tuple[str, ...] = tuple(name.removesuffix("_name") for name in TABLE_COLUMNS)

    def __init__(self, file: TextIO) -> None:
        self.widths = [len(h) for h in self.HEADERS]
        self.count = 0
        self._file = file

    def add(self, row: dict[str, Any]) -> None:
        cells = [_cell(row.get(name)) for name in TABLE_COLUMNS]
        self.widths = [max(w, len(c)) for w, c in zip(self.widths, cells, strict=True)]
        self._file.write("\t".join(cells) + "\n")
        self.count += 1

    def write(self, out: TextIO) -> int:
        """Aligned columns and a count of the rows (or a sentence if none); how many rows."""
        if not self.count:
            out.write("no audit events match\n")
            return 0
        _aligned(self.HEADERS, self.widths, out)
        _aligned(["-" * w for w in self.widths], self.widths, out)
        self._file.seek(0)
        for line in self._file:
            _aligned(line.removesuffix("\n").split("\t"), self.widths, out)
        out.write(f"{self.count} event{'s' if self.count != 1 else ''} (times in UTC)\n")
        return self.count


@contextmanager
def table_spool() -> Iterator[TableSpool]:
    """A :class:`TableSpool` over a new temporary file (gone, even on disk, once it ends)."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n") as file:
        yield TableSpool(file)


def write_table(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Aligned columns for a terminal; long cells are cut (use jsonl or csv for everything).
    How many rows were written."""
    with table_spool() as table:
        for row in rows:
            table.add(row)
        return table.write(out)


def _aligned(cells: Sequence[str], widths: Sequence[int], out: TextIO) -> None:
    out.write("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip())
    out.write("\n")


@asynccontextmanager
async def audit_log() -> AsyncIterator[AuditLog]:
    """The audit trail of the database the bot uses (created first if the bot never ran)."""
    settings = AgentSettings.from_env()
    url = await resolve_database_url(settings.database_url, settings.data_dir)
    async with open_pool(url, max_size=2) as pool:
        await migrate_bot(pool)
        yield AuditLog(pool)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "tool": args.tool,
        "user": args.user,
        "outcome": args.outcome,
        "since": args.since,
        "until": args.until,
    }


async def export(log: AuditLog, args: argparse.Namespace, out: TextIO) -> int:
    """Write the events in ``args.format``; how many were written. Every format reads the
    events through a server-side cursor (``AuditLog.stream``, ``--limit`` included) and
    writes them as they come, so an export of the whole trail runs in constant memory; the
    table, which must see every row to size its columns, keeps them in a temporary file
    meanwhile (:func:`table_spool`)."""
    rows = log.stream(**_filters(args), limit=args.limit)
    if args.format == "table":
        with table_spool() as table:
            async for row in rows:
                table.add(row)
            return table.write(out)
    count = 0
    writer = csv.writer(out, lineterminator="\n") if args.format == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    async for row in rows:
        if writer is not None:
            writer.writerow(csv_cells(row))
        else:
            out.write(jsonl_line(row))
        count += 1
    return count


async def run_verify(out: TextIO) -> int:
    """``audit verify``: 0 if the chain is intact, 1 at its first broken link, 2 if the
    database cannot be read (said on stderr)."""
    try:
        async with audit_log() as log:
            found = await verify(log.pool)
    except Exception as error:
        print(f"cannot read the audit trail: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    out.write("\n".join(found.lines()) + "\n")
    return 0 if found.broken is None else 1


async def run(args: argparse.Namespace, out: TextIO) -> int:
    """List or export (or ``verify``: :func:`run_verify`); 0 on success, 1 when the database
    cannot be read or the file cannot be written (said on stderr). A regular file is written
    beside ``--output`` and renamed into place only once complete, so a failed export never
    leaves a truncated file, nor clobbers one."""
    if getattr(args, "audit_command", None) == "verify":
        return await run_verify(out)
    try:
        async with audit_log() as log:
            if args.output is None:
                await export(log, args, out)
                return 0
            count = await _export_to(log, args, args.output)
    except OSError as error:
        print(f"cannot write {args.output}: {error.strerror}", file=sys.stderr)
        return 1
    except Exception as error:
        print(f"cannot read the audit trail: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    out.write(f"wrote {count} event{'s' if count != 1 else ''} to {args.output}\n")
    return 0


def _regular_or_new(path: Path) -> bool:
    return path.is_file() or not path.exists()


async def _export_to(log: AuditLog, args: argparse.Namespace, path: Path) -> int:
    """Into a regular file (or a new one): write beside it and rename into place once complete.
    Anything else (``/dev/null``, a pipe, a terminal) is written in place: renaming over a
    device would replace the device itself."""
    if not _regular_or_new(path):
        with path.open("w", encoding="utf-8", newline="") as file:
            return await export(log, args, file)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as file:
            count = await export(log, args, file)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bot.audit_cli`` works on its own until ``python -m bot audit`` is wired."""
    parser = argparse.ArgumentParser(
        prog="python -m bot audit", description="List or export the audit trail."
    )
    add_arguments(parser)
    return asyncio.run(run(parser.parse_args(argv), sys.stdout))


if __name__ == "__main__":
    sys.exit(main())
