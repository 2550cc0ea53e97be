"""`python -m ops export --from DAY --to DAY`: write the Power BI export for those UTC days (both
included), as the nightly timer does for yesterday: to `<data dir>/exports/` with the embedded
archive, to the `exports` blob container with `PSC_ARCHIVE=blob`. Re-running replaces the days'
files. Settings are read as the dev host reads them."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date
from typing import TextIO


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export", help="write the Power BI export (Parquet star schema) for a range of UTC days"
    )
    export.add_argument("--from", dest="first", required=True, type=date.fromisoformat, metavar="DAY")
    export.add_argument("--to", dest="last", required=True, type=date.fromisoformat, metavar="DAY")


async def _export(first: date, last: date, out: TextIO) -> int:
    from shared.config import load_settings
    from shared.exports.api import export_days
    from shared.runtime import build_runtime

    runtime = await build_runtime(load_settings())
    try:
        result = await export_days(runtime, first, last)
    finally:
        await runtime.close()
    for name in result.files:
        print(name, file=out)
    counts = ", ".join(f"{table} {n}" for table, n in result.rows.items())
    print(f"exported {len(result.days)} day(s): {counts}", file=out)
    return 0


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from shared.exports.api import day_range

    try:
        day_range(args.first, args.last)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return 2
    return asyncio.run(_export(args.first, args.last, out))
