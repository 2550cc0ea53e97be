"""`python -m ops kpis rebuild --from DAY --to DAY`: recompute the KPI buckets of whole UTC days
from the event history (shared/kpis/rebuild.py), against the store the settings name (the dev
host's embedded store, or Cosmos DB with the signed-in identity)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date
from typing import Any, TextIO


def add_parser(commands: Any) -> None:
    kpis = commands.add_parser("kpis", help="KPI aggregation: rebuild days from the event history")
    actions = kpis.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser("rebuild", help="recompute the buckets of whole UTC days from the history")
    rebuild.add_argument("--from", dest="first", required=True, type=date.fromisoformat, metavar="DAY")
    rebuild.add_argument("--to", dest="last", required=True, type=date.fromisoformat, metavar="DAY")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.last < args.first:
        print("--to is before --from", file=err)
        return 2
    return asyncio.run(_rebuild(args.first, args.last, out))


async def _rebuild(first: date, last: date, out: TextIO) -> int:
    from shared.config import load_settings
    from shared.kpis.api import rebuild
    from shared.runtime import build_runtime

    runtime = await build_runtime(load_settings())
    try:
        today = runtime.clock.now().date()
        done = await rebuild(runtime.store, first, last, runtime.settings.kpi_short_abandon_seconds, today)
    finally:
        await runtime.close()
    print(
        f"rebuilt {first} to {last}: {done.events} events read, {done.written} hour documents written "
        f"with {done.marks} mark documents, {done.deleted} deleted",
        file=out,
    )
    return 0
