"""``python -m bench``: the end-to-end benchmark (see docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shlex
import sys
from pathlib import Path

from bench.report import table, write_markdown
from bench.run import PHASES, Sizes, run

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def phases(text: str) -> tuple[str, ...]:
    """``--only``'s value: known phase names, comma-separated."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in PHASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown phase(s) {unknown}; known: {list(PHASES)}")
    return names


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark the approval bot end to end in one run: a real PostgreSQL (embedded, in "
            "a temporary directory, unless --database-url), the real bot HTTP app under uvicorn "
            "in its own process, a loopback Slack Web API stand-in, an instant scripted model "
            "and a no-op tool. Prints a results table (figure, measured, target, pass/miss)."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI-size numbers (well under a minute)"
    )
    parser.add_argument(
        "--only",
        type=phases,
        default=tuple(PHASES),
        metavar="PHASE[,PHASE]",
        help=f"run only these phases ({', '.join(PHASES)}; default: all); the figures of the "
        "others read n/a. 'ack' alone gives the acknowledgement figures (1, 50, 200 "
        "concurrent) and click->applied",
    )
    parser.add_argument(
        "--ack-rounds",
        type=int,
        default=None,
        metavar="N",
        help="rounds of 200 concurrent clicks (default: 1 with --quick, 2 otherwise)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="instead: a large organisation's year in bulk (1,000,000 pending reviews, "
        "10,000,000 audit events, 100,000 conversations, 1,000,000 event claims) and what "
        "the Home, the sweeper, audit export, prune and migrate take on it; not part of CI",
    )
    parser.add_argument(
        "--remote",
        action="store_true",
        help="instead: the remote agent backend (AGENT_URL) over a bare langgraph_sdk resume "
        "on one local langgraph dev (needs langgraph-cli[inmem]); not part of CI",
    )
    parser.add_argument(
        "--remote-samples", type=int, default=100, help="samples of each side for --remote"
    )
    parser.add_argument(
        "--scale-factor",
        type=float,
        default=1.0,
        help="multiply the --scale sizes (e.g. 0.01 to check that it works)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or None,
        help="use this PostgreSQL instead of a temporary embedded one (default: $DATABASE_URL); "
        "the run leaves its benchmark threads there, so use a throwaway database",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help=f"write the results block into this file (default: {DOCS.name} for a full run, "
        "nothing for --quick)",
    )
    return parser.parse_args(argv)


async def scale(database_url: str | None, factor: float) -> int:
    from bench.run import database
    from bench.scale import run_scale

    async with database(database_url) as url:
        print((await run_scale(url, factor)).table())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.scale:
        return asyncio.run(scale(args.database_url, args.scale_factor))
    if args.remote:
        from bench.remote import measure

        print("\n".join(asyncio.run(measure(args.remote_samples)).lines()))
        return 0
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.ack_rounds is not None:
        sizes = dataclasses.replace(sizes, rounds_200=args.ack_rounds)
    results = asyncio.run(run(sizes, args.database_url, args.only))
    print(table(results))
    for note in results.notes:
        print(f"note: {note}")
    partial = args.only != tuple(PHASES) or args.ack_rounds is not None
    target = args.markdown or (None if args.quick or partial else DOCS)
    if target is not None:
        command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
        write_markdown(target, results, command.strip())
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
