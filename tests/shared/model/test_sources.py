from __future__ import annotations

import asyncpg
import pytest

from shared.binance_csv import COLUMNS, INT_COLUMNS
from shared.model.sources import archive_name_parts, csv_identity, fetch_db_candles, last_days
from shared.model.synthetic import synthetic_candles


def test_archive_names() -> None:
    assert archive_name_parts("/x/BTCUSDT-5m-2024-01.csv") == ("BTCUSDT", "5m")
    assert archive_name_parts("ETHUSDT-1h-2025-03-15.zip") == ("ETHUSDT", "1h")
    assert archive_name_parts("candles.csv") is None
    assert csv_identity(["BTCUSDT-5m-2024-01.csv", "BTCUSDT-5m-2024-02.csv"]) == ("BTCUSDT", "5m")
    assert csv_identity(["a.csv"]) == (None, None)
    with pytest.raises(ValueError, match="mix"):
        csv_identity(["BTCUSDT-5m-2024-01.csv", "ETHUSDT-5m-2024-01.csv"])


def test_last_days() -> None:
    candles = synthetic_candles(2 * 288 + 10)
    assert len(last_days(candles, 1)) == 288
    assert len(last_days(candles, None)) == len(candles)


async def test_reads_candles_from_the_database(database_url: str) -> None:
    candles = synthetic_candles(30, seed=3)
    records = [
        ("BTCUSDT", "5m", *(int(r[c]) if c in INT_COLUMNS else float(r[c]) for c in COLUMNS))
        for r in candles.to_dict("records")
    ]
    placeholders = ", ".join(f"${i + 1}" for i in range(len(COLUMNS) + 2))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            f"INSERT INTO candles (symbol, interval, {', '.join(COLUMNS)}) VALUES ({placeholders})", records
        )
    finally:
        await conn.close()
    frame = await fetch_db_candles(database_url, "BTCUSDT", "5m", since_ms=int(candles["open_time"].iloc[10]))
    assert list(frame.columns) == list(COLUMNS)
    assert frame["open_time"].tolist() == candles["open_time"].iloc[10:].tolist()
    assert frame["close"].tolist() == pytest.approx(candles["close"].iloc[10:].tolist())
    assert (await fetch_db_candles(database_url, "ETHUSDT", "5m")).empty
    last_hour = await fetch_db_candles(database_url, "BTCUSDT", "5m", days=1 / 24)
    assert last_hour["open_time"].tolist() == candles["open_time"].iloc[-12:].tolist()
