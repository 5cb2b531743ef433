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
