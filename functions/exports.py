"""The nightly Power BI export: at 02:30 UTC, yesterday's facts and today's dimensions as Parquet
in the `exports` container (docs/POWERBI.md). A fixed schedule, not a setting: the feed's contract
with Power BI's scheduled refresh is "yesterday is there by 03:00 UTC". Re-running replaces the
day's files, so a retry or a manual `python -m ops export` for the same day is harmless.

DuckDB, the Parquet writer, loads with the first export, never while the worker indexes the app.
"""

from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger("psc.exports")

NIGHTLY = "0 30 2 * * *"


@bp.timer_trigger(arg_name="timer", schedule=NIGHTLY, run_on_startup=False)
async def power_bi_export(timer: func.TimerRequest) -> None:
    from shared.exports.api import export_days, yesterday
    from shared.kernel.observability import new_correlation_id, request_scope
    from shared.runtime import get_runtime

    with request_scope(new_correlation_id()):
        rt = await get_runtime()
        day = yesterday(rt)
        result = await export_days(rt, day, day)
        log.info("nightly export", extra={"day": day.isoformat(), "files": len(result.files)})
