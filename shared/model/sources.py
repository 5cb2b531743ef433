"""Where training candles come from: Binance archive CSVs, or the `candles` table."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from shared.binance_csv import COLUMNS, read_archive_csvs

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


async def fetch_db_candles(
    dsn: str, symbol: str, interval: str, since_ms: int | None = None, days: float | None = None
) -> pd.DataFrame:
    """Candles of one symbol and interval from Postgres, oldest first, as the model expects.

    `days` keeps the last `days` days before the newest stored candle (not before now: a
    database filled by a replay of old archives holds old times).
    """
    import asyncpg

    window_ms = int(days * 86_400_000) if days is not None else None
    query = (
        f"SELECT {', '.join(COLUMNS)} FROM candles WHERE symbol = $1 AND interval = $2 AND open_time >= $3 "
        "AND ($4::bigint IS NULL OR open_time > "
        "(SELECT max(open_time) FROM candles WHERE symbol = $1 AND interval = $2) - $4::bigint) "
        "ORDER BY open_time"
    )
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(query, symbol, interval, since_ms if since_ms is not None else 0, window_ms)
    finally:
        await conn.close()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(COLUMNS))
    for name in ("open_time", "close_time", "trades"):
        frame[name] = frame[name].astype(np.int64)
    return frame


def load_db(dsn: str, symbol: str, interval: str, days: float | None) -> pd.DataFrame:
    """Blocking wrapper for the CLI (there is no running event loop there)."""
    return asyncio.run(fetch_db_candles(dsn, symbol, interval, days=days))
