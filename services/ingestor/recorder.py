"""The recorder: `candles` into Postgres, in batches, committing offsets only after the database.

A batch is one transaction (an upsert, so a replayed candle just overwrites itself) and the
consumer offsets are committed after it; a crash anywhere replays the batch and loses nothing.
A message that is not a valid `Candle` goes to dead-letter with the reason, and the batch goes on;
so does a candle the database refuses (after retries, `shared.messaging.failures`).

After the database commit, a `DailyTick` is published for each candle that opens a new UTC day
compared with the candle stored just before it. That is decided by event time, from the data,
so replaying history ticks the same days again (the trainer coalesces repeats).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from services.ingestor.metrics import RECORD_BATCH, RECORDED
from services.ingestor.store import previous_open_time
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Candle, DailyTick
from shared.messaging.failures import RetryPolicy, failure_reason, process_isolating
from shared.messaging.runtime import BATCH_WAIT_MS, RETRY_PAUSE, DeadLetters, kafka_records, undecoded
from shared.storage.candle_store import upsert_candles

log = logging.getLogger(__name__)

SERVICE = "ingestor"
# Records per batch (one transaction): an import of a year of 5m (105k candles) was recorded at
# 12,444/s with 1,000 and 16,625/s with 5,000 (bench/ingest_bench.py, 2 cores); live batches are
# what a poll returns, a few candles.
MAX_RECORDS = 5000


def utc_day(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d")


async def record_batch(conn: asyncpg.Connection, candles: list[Candle]) -> list[DailyTick]:
    """Upsert `candles` in the caller's transaction; returns the day ticks they cause."""
    latest: dict[tuple[str, str, int], Candle] = {}
    for candle in candles:
        latest[(candle.symbol, candle.interval, candle.open_time)] = candle  # the last copy wins
    by_series: dict[tuple[str, str], list[Candle]] = defaultdict(list)
    for candle in latest.values():
        by_series[(candle.symbol, candle.interval)].append(candle)

    ticks = []
    for (symbol, interval), series in by_series.items():
        series.sort(key=lambda c: c.open_time)
        previous = await previous_open_time(conn, symbol, interval, series[0].open_time)
        for candle in series:
            if previous is not None and utc_day(candle.open_time) != utc_day(previous):
                ticks.append(
                    DailyTick(symbol=symbol, interval=interval, day=utc_day(candle.open_time),
                              candle_time=candle.open_time)
                )
            previous = candle.open_time
    await upsert_candles(conn, list(latest.values()))
    return ticks


def recorder_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}candlecast-recorder"


def add_recorder(
    broker: KafkaBroker,
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    group_id: str | None = None,
    max_records: int = MAX_RECORDS,
) -> None:
    """Subscribe the recorder on `broker` (before `broker.start()`); it uses `pool` for Postgres."""
    source = settings.topic(topics.CANDLES)
    ticks_topic = settings.topic(topics.TICKS)
    retry = RetryPolicy.from_settings(settings)

    @broker.subscriber(
        source,
        batch=True,
        group_id=group_id or recorder_group(settings),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=max_records,
        batch_timeout_ms=BATCH_WAIT_MS,
        decoder=undecoded,
    )
    async def record_candles(message: KafkaMessage) -> None:
        records = kafka_records(message)
        letters = DeadLetters(broker, settings, service=SERVICE)
        items = [(r, c) for r, c in ((r, letters.decode(Candle, r)) for r in records) if c is not None]
        RECORD_BATCH.observe(len(records))
        ticks: list[DailyTick] = []

        async def record(part: Sequence[tuple[ConsumerRecord[Any, Any], Candle]]) -> None:
            async with pool.acquire() as conn, conn.transaction():
                ticks.extend(await record_batch(conn, [c for _, c in part]))

        try:
            failed = await process_isolating(items, record, retry, what="a batch of candles to record")
        except Exception as exc:  # the infrastructure: the rest were dead-lettered inside
            log.error("recording a batch of %d failed (%s); it will be replayed", len(records), exc)
            await asyncio.sleep(RETRY_PAUSE)
            raise
        for (record, _), error in failed:
            letters.reject(record, failure_reason(error), kind="handler_error")
        await letters.send()  # only now: a failed batch is replayed and would send them twice
        for tick in ticks:
            await broker.publish(tick, ticks_topic, key=topics.symbol_key(tick.symbol))
        counts: dict[tuple[str, str], int] = defaultdict(int)
        rejected = {id(r) for (r, _), _ in failed}
        for record, candle in items:
            if id(record) not in rejected:
                counts[(candle.symbol, candle.interval)] += 1
        for (symbol, interval), count in counts.items():
            RECORDED.labels(symbol, interval).inc(count)
