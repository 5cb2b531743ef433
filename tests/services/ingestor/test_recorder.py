"""The recorder: batches into Postgres, offsets after the commit, dead letters, day ticks."""

from __future__ import annotations

import json
import logging

import asyncpg
import pytest

from services.ingestor.recorder import add_recorder, utc_day
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Candle
from shared.messaging.runtime import make_broker
from shared.storage import create_pool
from testkit.kafka import read_topic
from testkit.waiting import eventually
from tests.services.ingestor.support import STEP, running_ingestor, stored_count

MIDNIGHT = 1_704_153_600_000  # 2024-01-02T00:00:00Z


def candle(open_time: int, close: float = 100.5, symbol: str = "BTCUSDT") -> Candle:
    return Candle(symbol=symbol, interval="5m", open_time=open_time, close_time=open_time + STEP - 1, open=100,
                  high=max(101, close), low=min(99, close), close=close, volume=1, quote_volume=100, trades=5,
                  taker_buy_base_volume=0.5, taker_buy_quote_volume=50)


async def publish(settings: Settings, *messages: Candle | bytes) -> None:
    broker = make_broker(settings, "test")
    await broker.start()
    try:
        for message in messages:
            await broker.publish(message, settings.topic(topics.CANDLES), key=b"BTCUSDT")
    finally:
        await broker.stop()


async def test_candles_are_upserted_and_a_repeat_overwrites_instead_of_duplicating(
    settings: Settings, db: asyncpg.Connection
) -> None:
    times = [MIDNIGHT + i * STEP for i in range(300)]
    await publish(settings, *(candle(t) for t in times))
    async with running_ingestor(settings, ingest=False) as task:
        await eventually(lambda: _count_is(db, 300), "300 rows", task=task)
        await publish(settings, candle(times[7], close=123.0))  # the same candle again, corrected
        await eventually(lambda: _close_is(db, times[7], 123.0), "the corrected close", task=task)
    assert await stored_count(db) == 300


async def test_invalid_messages_are_dead_lettered_with_the_reason_and_the_batch_goes_on(
    settings: Settings, db: asyncpg.Connection
) -> None:
    good = [candle(MIDNIGHT + i * STEP) for i in range(5)]
    bad_prices = json.loads(good[0].model_dump_json()) | {"high": 90.0}
    future_version = json.loads(good[0].model_dump_json()) | {"schema_version": 2}
    await publish(settings, good[0], b"{not json", json.dumps(bad_prices).encode(), *good[1:3],
                  json.dumps(future_version).encode(), *good[3:])
    async with running_ingestor(settings, ingest=False) as task:
        await eventually(lambda: _count_is(db, 5), "the five good candles", task=task)

        async def three_letters() -> bool:
            return len(await read_topic(settings, topics.DEAD_LETTER)) >= 3

        await eventually(three_letters, "three dead letters", task=task)
    letters = [json.loads(r.value) for r in await read_topic(settings, topics.DEAD_LETTER)]
    assert next(letter["payload"][:9] for letter in letters) == "{not json"
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "Invalid JSON" in reasons and "high must be >= max(open, close)" in reasons and "schema_version" in reasons
    assert {letter["source_topic"] for letter in letters} == {settings.topic(topics.CANDLES)}
    assert {letter["key"] for letter in letters} == {"BTCUSDT"}


async def test_the_first_candle_of_a_utc_day_ticks_and_a_replay_ticks_the_same(
    settings: Settings, db: asyncpg.Connection, database_url: str
) -> None:
    # 23:00 .. 00:55: one day change; the very first candle has nothing before it, so no tick.
    times = [MIDNIGHT - 12 * STEP + i * STEP for i in range(24)]
    await publish(settings, *(candle(t) for t in times))
    async with running_ingestor(settings, ingest=False) as task:
        await eventually(lambda: _count_is(db, 24), "24 rows", task=task)
        await eventually(lambda: _ticks_are(settings, 1), "one tick", task=task)
    tick = json.loads((await read_topic(settings, topics.TICKS))[0].value)
    assert (tick["day"], tick["candle_time"], tick["symbol"]) == ("2024-01-02", MIDNIGHT, "BTCUSDT")
    assert utc_day(MIDNIGHT - 1) == "2024-01-01"

    # A replay (another consumer group reading the same history) ticks exactly the same again.
    pool = await create_pool(database_url)
    broker = make_broker(settings, "replay")
    add_recorder(broker, settings, pool, group_id=f"{settings.topic_prefix}replay")
    try:
        await broker.start()
        await eventually(lambda: _ticks_are(settings, 2), "the replayed tick")
    finally:
        await broker.stop()
        await pool.close()
    ticks = [json.loads(r.value) for r in await read_topic(settings, topics.TICKS)]
    assert ticks[0] == ticks[1]
    assert await stored_count(db) == 24


async def test_a_failed_database_write_is_replayed_not_lost(
    settings: Settings, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await db.execute("ALTER TABLE candles RENAME TO candles_away")
    await publish(settings, *(candle(MIDNIGHT + i * STEP) for i in range(10)))

    async def failed_once() -> bool:
        return any("will be replayed" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.ERROR, logger="services.ingestor.recorder"):
        async with running_ingestor(settings, ingest=False) as task:
            await eventually(failed_once, "a failed batch", task=task)
            await db.execute("ALTER TABLE candles_away RENAME TO candles")
            await eventually(lambda: _count_is(db, 10), "the replayed batch", task=task)


async def _count_is(db: asyncpg.Connection, n: int) -> bool:
    return await stored_count(db) == n


async def _close_is(db: asyncpg.Connection, open_time: int, close: float) -> bool:
    return await db.fetchval("SELECT close FROM candles WHERE open_time = $1", open_time) == close


async def _ticks_are(settings: Settings, n: int) -> bool:
    return len(await read_topic(settings, topics.TICKS)) == n


