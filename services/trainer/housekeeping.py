"""Bounded growth of the prediction tables: old shadow predictions (and, if asked, old futures)
are deleted per stream, hourly, by the trainer (the one writer that is not on a candle's path);
and the disk used by Postgres (the database, its large tables) and Kafka (each topic, every
replica) measured each minute as metrics, so growth shows on a dashboard before it fills a disk.

Age is counted back from the stream's newest row, in candle time, not from the wall clock: the
demo's stand-in serves 2024 candles in 2026, and a replay of old archives must not be wiped as
soon as it is written. Whatever the setting, the newest `drift_window` candles' rows stay (the
predictor's rolling error is rebuilt from them after a restart).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.trainer.metrics import KAFKA_TOPIC_BYTES, POSTGRES_DATABASE_BYTES, POSTGRES_TABLE_BYTES
from shared.config import Settings, interval_ms
from shared.market.streams import DAY_MS
from shared.messaging.log_dirs import topic_bytes

log = logging.getLogger(__name__)

#: Tables and the setting that bounds each (days; 0 = keep everything).
TABLES = (("shadow_futures", "shadow_retention_days"), ("futures", "futures_retention_days"))
#: The tables that grow with time, measured.
MEASURED = ("candles", "futures", "shadow_futures", "series", "job_logs")


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


async def measure_disk(pool: asyncpg.Pool, settings: Settings) -> None:
    """Set the disk gauges: the database and its growing tables, each topic of the deployment."""
    async with pool.acquire() as conn:
        POSTGRES_DATABASE_BYTES.set(await conn.fetchval("SELECT pg_database_size(current_database())"))
        for table in MEASURED:
            size = await conn.fetchval("SELECT pg_total_relation_size(to_regclass($1))", table)
            POSTGRES_TABLE_BYTES.labels(table).set(size or 0)
    for topic, size in (await topic_bytes(settings.kafka, settings.topic_prefix)).items():
        KAFKA_TOPIC_BYTES.labels(topic.removeprefix(settings.topic_prefix)).set(size)


async def measure_disk_forever(pool: asyncpg.Pool, settings: Settings, every: float = 60.0) -> None:
    while True:
        try:
            await measure_disk(pool, settings)
        except Exception as exc:  # a metric must never take the trainer down; the next round tries again
            log.warning("measuring disk use failed: %s", exc)
        await asyncio.sleep(every)
