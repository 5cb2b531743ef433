"""The ingestor's SQL: the candles upsert and the "where did we stop" queries."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared.messaging.events import Candle

_COLUMNS = (
    "symbol", "interval", "open_time", "close_time", "open", "high", "low", "close", "volume",
    "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume", "first_trade_id", "last_trade_id",
)
_TYPES = (
    "text", "text", "bigint", "bigint", "float8", "float8", "float8", "float8", "float8",
    "float8", "int4", "float8", "float8", "int8", "int8",
)
_UPDATED = [c for c in _COLUMNS if c not in ("symbol", "interval", "open_time")]

# One statement per batch: arrays in, unnest, upsert. A replayed candle overwrites itself.
UPSERT = (
    f"INSERT INTO candles ({', '.join(_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'${i + 1}::{t}[]' for i, t in enumerate(_TYPES))}) "
    "ON CONFLICT (symbol, interval, open_time) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATED)
    + ", recorded_at = now()"
)


async def upsert_candles(conn: asyncpg.Connection, candles: Sequence[Candle]) -> None:
    """Insert or overwrite; within one call each (symbol, interval, open_time) must appear once."""
    if not candles:
        return
    columns = [[getattr(c, name) for c in candles] for name in _COLUMNS]
    await conn.execute(UPSERT, *columns)


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
