"""The one reader of stored candles into a model frame: bounds, the last days, the CLI's wrapper."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.market.binance_csv import COLUMNS, INT_COLUMNS
from shared.model.sources import load_db
from shared.model.synthetic import synthetic_candles
from shared.storage.candle_store import load_candles

CANDLES = synthetic_candles(30, seed=3)


async def _store(db: asyncpg.Connection) -> None:
    records = [
        ("BTCUSDT", "5m", *(int(r[c]) if c in INT_COLUMNS else float(r[c]) for c in COLUMNS))
        for r in CANDLES.to_dict("records")
    ]
    placeholders = ", ".join(f"${i + 1}" for i in range(len(COLUMNS) + 2))
    await db.executemany(f"INSERT INTO candles (symbol, interval, {', '.join(COLUMNS)}) VALUES ({placeholders})",
                         records)


async def test_reads_candles_from_the_database(db: asyncpg.Connection) -> None:
    await _store(db)
    frame = await load_candles(db, "BTCUSDT", "5m", since_ms=int(CANDLES["open_time"].iloc[10]))
    assert list(frame.columns) == list(COLUMNS)
    assert frame["open_time"].tolist() == CANDLES["open_time"].iloc[10:].tolist()
    assert frame["close"].tolist() == pytest.approx(CANDLES["close"].iloc[10:].tolist())
    assert (await load_candles(db, "ETHUSDT", "5m")).empty
    last_hour = await load_candles(db, "BTCUSDT", "5m", days=1 / 24)
    assert last_hour["open_time"].tolist() == CANDLES["open_time"].iloc[-12:].tolist()
    until = int(CANDLES["open_time"].iloc[5])
    assert (await load_candles(db, "BTCUSDT", "5m", until_ms=until))["open_time"].tolist() == \
        CANDLES["open_time"].iloc[:5].tolist()


def test_the_cli_reads_the_last_days_with_its_own_connection(database_url: str) -> None:
    async def store() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await _store(conn)
        finally:
            await conn.close()

    asyncio.run(store())
    assert load_db(database_url, "BTCUSDT", "5m", 1 / 24)["open_time"].tolist() == \
        CANDLES["open_time"].iloc[-12:].tolist()
    assert len(load_db(database_url, "BTCUSDT", "5m", None)) == len(CANDLES)


async def test_every_writer_locks_new_candles_in_key_order(database_url: str) -> None:
    """A batch given in any order takes the rows' locks in key order, so writers of overlapping
    batches (the recorder, two predictors) wait for each other instead of deadlocking: here a
    batch [ETH, BTC] waiting for BTC must not have taken ETH yet."""
    from shared.market.binance_csv import frame_to_candles
    from shared.storage.candle_store import upsert_candles

    btc = frame_to_candles(CANDLES.iloc[:1], "BTCUSDT", "5m")[0]
    eth = frame_to_candles(CANDLES.iloc[:1], "ETHUSDT", "5m")[0]
    holder, waiter, other = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        hold = holder.transaction()
        await hold.start()
        await upsert_candles(holder, [btc], overwrite=False)  # BTC's new row, not committed
        waiting = asyncio.create_task(upsert_candles(waiter, [eth, btc], overwrite=False))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # it waits for BTC...
        await other.execute("SET statement_timeout = '3s'")
        await upsert_candles(other, [eth], overwrite=False)  # ...without holding ETH
        await hold.commit()
        await asyncio.wait_for(waiting, 10)
    finally:
        for conn in (holder, waiter, other):
            await conn.close()
