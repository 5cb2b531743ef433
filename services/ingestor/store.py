"""The ingestor's "where did we stop" queries (the candles upsert is `shared.storage.candle_store`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def last_stored(pool: asyncpg.Pool, symbols: Sequence[str], interval: str) -> dict[str, int]:
    """Open time of the newest stored candle per symbol (symbols without any are absent)."""
    rows = await pool.fetch(
        "SELECT symbol, max(open_time) AS last FROM candles WHERE interval = $1 AND symbol = ANY($2::text[]) "
        "GROUP BY symbol",
        interval,
        list(symbols),
    )
    return {r["symbol"]: int(r["last"]) for r in rows}


async def previous_open_time(conn: asyncpg.Connection, symbol: str, interval: str, before: int) -> int | None:
    """The newest stored open time strictly before `before` (the candle preceding a batch)."""
    value = await conn.fetchval(
        "SELECT max(open_time) FROM candles WHERE symbol = $1 AND interval = $2 AND open_time < $3",
        symbol,
        interval,
        before,
    )
    return int(value) if value is not None else None
