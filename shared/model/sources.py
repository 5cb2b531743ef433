"""Where training candles come from: Binance archive CSVs, or the `candles` table."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import pandas as pd

from shared.market.binance_csv import read_archive_csvs
from shared.storage.candle_store import load_candles

# data.binance.vision names: BTCUSDT-5m-2024-01.csv (monthly) or BTCUSDT-5m-2024-01-15.zip (daily)
_ARCHIVE_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdwM])-\d{4}-\d{2}(?:-\d{2})?\.(?:csv|zip)$")


def archive_name_parts(path: str | Path) -> tuple[str, str] | None:
    """(symbol, interval) from a Binance archive file name, None for any other name."""
    match = _ARCHIVE_NAME.match(Path(path).name)
    return (match["symbol"], match["interval"]) if match else None


def csv_identity(paths: Sequence[str | Path]) -> tuple[str | None, str | None]:
    """The symbol and interval all the files' names agree on (None where they do not say)."""
    parts = {archive_name_parts(p) for p in paths}
    if len(parts) == 1 and None not in parts:
        symbol, interval = next(iter(parts))  # type: ignore[misc]
        return symbol, interval
    known = {p for p in parts if p is not None}
    if len(known) > 1:
        raise ValueError(f"the files mix symbols/intervals: {sorted(known)}")
    return None, None


def load_csv(paths: Sequence[str | Path]) -> pd.DataFrame:
    return read_archive_csvs(paths)


def last_days(candles: pd.DataFrame, days: float | None) -> pd.DataFrame:
    """The candles of the last `days` days (by open time), or all of them."""
    if days is None or candles.empty:
        return candles
    end = int(candles["open_time"].iloc[-1])
    start = end - int(days * 86_400_000)
    return candles[candles["open_time"] > start].reset_index(drop=True)


def load_db(dsn: str, symbol: str, interval: str, days: float | None) -> pd.DataFrame:
    """The stored candles of the last `days` days (all if None), for the CLI (no event loop there)."""

    async def load() -> pd.DataFrame:
        conn = await asyncpg.connect(dsn)
        try:
            return await load_candles(conn, symbol, interval, days=days)
        finally:
            await conn.close()

    return asyncio.run(load())
