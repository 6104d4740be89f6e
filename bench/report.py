"""Turn raw measurements into the results table, and write it into docs/benchmarks.md."""

from __future__ import annotations

import math
import os
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.run import Results
from bench.stats import median, percentile

# Every figure the benchmark reports, in table order (the smoke test checks each is printed).
FIGURES: tuple[str, ...] = (
    "ack p50, 1 concurrent",
    "ack p99, 1 concurrent",
    "ack p50, 50 concurrent",
    "ack p99, 50 concurrent",
    "ack p50, 200 concurrent",
    "ack p99, 200 concurrent",
    "ack p99 beside unsigned 16 MiB bodies",
    "click->applied p50",
    "click->applied p99",
    "bare LangGraph resume p50",
    "click->applied p50 / bare resume p50",
    "sustained approvals",
    "bare LangGraph sustained resumes",
    "sustained approvals / bare sustained resumes",
    "bot CPU per approval",
    "resume p50, 1-turn thread",
    "resume p50, long thread",
    "long / 1-turn resume",
    "stored per thread, 1/4 of the turns",
    "stored per thread, 1/2 of the turns",
    "stored per thread, all turns",
    "growth per turn, 2nd half / 1st half",
    "bot RSS, 0 bulk pending",
    "bot RSS, bulk pending",
    "bot RSS growth with bulk pending",
    "list one user's pending p50",
    "list one user's pending p99",
    "list one user's pending, first scan p50",
    "App Home for one user p50",
    "App Home for one user p99",
)

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    target: str
    ok: bool | None  # None: no target, informational
    conditions: str

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("pass" if self.ok else "MISS")


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def mb(value: float) -> str:
    return f"{value / 1_000_000:.2f} MB"


def rows(results: Results) -> list[Row]:
    sizes = results.sizes
    out: list[Row] = []
    for level in (1, 50, 200):
        samples = results.ack.get(level, [])
        for pct in (50, 99):
            value = percentile(samples, pct)
            target, ok = ("", None)
            if level == 200 and pct == 99:
                target, ok = "<= 50 ms", value <= 0.050
            out.append(
                Row(
                    f"ack p{pct}, {level} concurrent",
                    ms(value),
                    target,
                    ok,
                    f"{len(samples)} clicks",
                )
            )
    hostile = percentile(results.hostile_ack, 99)
    out.append(
        Row(
            "ack p99 beside unsigned 16 MiB bodies",
            ms(hostile),
            "<= 50 ms",
            hostile <= 0.050,
            f"{len(results.hostile_ack)} clicks, one at a time; {results.hostile_refused} bodies"
            " refused (413) meanwhile",
        )
    )
    applied = results.applied
    out.append(Row("click->applied p50", ms(median(applied)), "", None, f"{len(applied)} clicks"))
    out.append(Row("click->applied p99", ms(percentile(applied, 99)), "", None, "one at a time"))
    bare = median(results.bare)
    out.append(Row("bare LangGraph resume p50", ms(bare), "", None, f"{len(results.bare)} resumes"))
    ratio = median(applied) / bare if bare else math.nan
    out.append(
        Row("click->applied p50 / bare resume p50", f"{ratio:.2f}x", "<= 2x", ratio <= 2, "")
    )
    rate, bare_rate = results.sustained_per_second, results.bare_sustained_per_second
    at_once = f"{sizes.sustained_concurrency} at once"
    out.append(
        Row(
            "sustained approvals",
            f"{rate:.0f}/s",
            "",
            None,
            f"{sizes.sustained} reviews, {at_once}: click -> decision applied, over HTTP",
        )
    )
    out.append(
        Row(
            "bare LangGraph sustained resumes",
            f"{bare_rate:.0f}/s",
            "",
            None,
            f"{sizes.sustained} threads, {at_once}, same database, pool of 20",
        )
    )
    throughput = rate / bare_rate if bare_rate else math.nan
    out.append(
        Row(
            "sustained approvals / bare sustained resumes",
            f"{throughput:.2f}x",
            ">= 0.8x",
            throughput >= 0.8,
            "measured in the same run",
        )
    )
    out.append(
        Row(
            "bot CPU per approval",
            ms(results.cpu_per_approval),
            "",
            None,
            "user+system CPU of the bot process / approvals, sustained run",
        )
    )
    short, long = median(results.resume_short), median(results.resume_long)
    out.append(
        Row(
            "resume p50, 1-turn thread",
            ms(short),
            "",
            None,
            f"service.answer, {len(results.resume_short)} threads",
        )
    )
    out.append(
        Row(
            "resume p50, long thread",
            ms(long),
            "",
            None,
            f"{sizes.turns} turns, {len(results.resume_long)} samples",
        )
    )
    growth = long / short if short else math.nan
    out.append(Row("long / 1-turn resume", f"{growth:.2f}x", "<= 1.5x", growth <= 1.5, ""))
    marks = sorted(results.stored)
    labels = ("1/4 of the turns", "1/2 of the turns", "all turns")
    for label, turns in zip(labels, marks, strict=False):
        out.append(
            Row(
                f"stored per thread, {label}",
                mb(results.stored[turns]),
                "",
                None,
                f"{turns} turns (mean of the last {min(10, sizes.turns // 4)})",
            )
        )
    if len(marks) == 3:
        q, h, f = (results.stored[t] for t in marks)
        first = (h - q) / (marks[1] - marks[0])
        second = (f - h) / (marks[2] - marks[1])
        shape = second / first if first else math.nan
        out.append(
            Row(
                "growth per turn, 2nd half / 1st half",
                f"{shape:.2f}",
                "~1 (linear; 2 = quadratic)",
                shape <= 1.25,
                f"{second / 1000:.1f} kB/turn vs {first / 1000:.1f} kB/turn",
            )
        )
    bulk = sizes.pending_rows
    base_kb, bulk_kb = results.rss_kb.get(0, 0), results.rss_kb.get(bulk, 0)
    out.append(Row("bot RSS, 0 bulk pending", f"{base_kb / 1024:.1f} MiB", "", None, "VmRSS"))
    out.append(
        Row("bot RSS, bulk pending", f"{bulk_kb / 1024:.1f} MiB", "", None, f"{bulk:,} pending")
    )
    delta_mb = (bulk_kb - base_kb) * 1024 / 1_000_000
    out.append(
        Row(
            "bot RSS growth with bulk pending",
            f"{delta_mb:+.2f} MB",
            "<= 10 MB",
            delta_mb <= 10,
            f"{bulk:,} pending, after {sizes.traffic} approvals",
        )
    )
    listing = results.listing
    p50, p99 = median(listing), percentile(listing, 99)
    out.append(
        Row(
            "list one user's pending p50",
            ms(p50),
            "<= 20 ms",
            p50 <= 0.020,
            f"{bulk:,} pending; the App Home's scan (newest 1,000)",
        )
    )
    out.append(Row("list one user's pending p99", ms(p99), "", None, f"{len(listing)} listings"))
    first_scans = results.first_listing
    out.append(
        Row(
            "list one user's pending, first scan p50",
            ms(median(first_scans)),
            "",
            None,
            f"nothing reused from an earlier scan, {len(first_scans)} listings",
        )
    )
    homes = results.home
    for pct in (50, 99):
        out.append(
            Row(
                f"App Home for one user p{pct}",
                ms(percentile(homes, pct)),
                "",
                None,
                f"{bulk:,} pending, app_home_opened -> views.publish, {len(homes)} opens",
            )
        )
    return out


def table(results: Results) -> str:
    header = ("figure", "measured", "target", "result", "conditions")
    body = [(r.figure, r.measured, r.target, r.verdict, r.conditions) for r in rows(results)]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(cells) for cells in body)])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for text in Path("/proc/meminfo").read_text().splitlines():
            if text.startswith("MemTotal:"):
                memory = f"{int(text.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs (nproc), {memory} RAM, {cpu}; "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def markdown(results: Results, command: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = "".join(f"\n- {note}" for note in results.notes)
    return (
        f"{START}\n"
        f"- Date: {when}\n"
        f"- Machine: {machine()}\n"
        f"- Command: `{command}`{notes}\n\n"
        f"{table(results)}\n"
        f"{END}"
    )


def write_markdown(path: Path, results: Results, command: str) -> None:
    """Replace the results block of ``path`` (or append one), keeping the prose around it."""
    block = markdown(results, command)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
