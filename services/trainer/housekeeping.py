"""Bounded growth of the prediction tables: old shadow predictions (and, if asked, old futures)
are deleted per stream, hourly, by the trainer (the one writer that is not on a candle's path).

Age is counted back from the stream's newest row, in candle time, not from the wall clock: the
demo's stand-in serves 2024 candles in 2026, and a replay of old archives must not be wiped as
soon as it is written. Whatever the setting, the newest `drift_window` candles' rows stay (the
predictor's rolling error is rebuilt from them after a restart).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared.config import Settings, interval_ms
from shared.market.streams import DAY_MS

log = logging.getLogger(__name__)

#: Tables and the setting that bounds each (days; 0 = keep everything).
TABLES = (("shadow_futures", "shadow_retention_days"), ("futures", "futures_retention_days"))


async def prune(pool: asyncpg.Pool, settings: Settings) -> dict[str, int]:
    """Delete the rows older than each table's retention, per stream; returns rows deleted per table."""
    deleted: dict[str, int] = {}
    for table, setting in TABLES:
        days = float(getattr(settings, setting))
        if days <= 0:
            continue
        total = 0
        for symbol, interval in settings.streams:
            keep_ms = max(int(days * DAY_MS), settings.drift_window * interval_ms(interval))
            status = await pool.execute(
                f"DELETE FROM {table} WHERE symbol = $1 AND interval = $2 AND time < "  # table: one of TABLES
                f"(SELECT max(time) FROM {table} WHERE symbol = $1 AND interval = $2) - $3",
                symbol, interval, keep_ms)
            total += int(status.split()[-1])
        deleted[table] = total
    if any(deleted.values()):
        log.info("pruned %s", ", ".join(f"{n} {table} rows" for table, n in deleted.items()))
    return deleted


async def prune_forever(pool: asyncpg.Pool, settings: Settings, every: float = 3600.0) -> None:
    while True:
        try:
            await prune(pool, settings)
        except (OSError, asyncpg.PostgresError) as exc:  # the next round tries again
            log.warning("pruning old prediction rows failed: %s", exc)
        await asyncio.sleep(every)
