"""The predictor's SQL: `futures` rows (predicted, then filled) and `drift_events`.

The first prediction for a time wins: a replayed candle, or a new model replaying old
candles, must not rewrite a prediction that was made before its target was known (that would be
look-ahead dressed up as a forecast). Filling is first-wins too. Both statements return the
stored rows, so events are published from what the database holds, and replays re-publish the
same values (at-least-once, never different).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg
import numpy as np
import pandas as pd

from services.predictor.core import FutureRow
from services.predictor.rolling import Drift
from shared.model.forecast import NextCandle
from shared.model.intervals import SERVED_LEVELS, from_json, served, to_json

Db: TypeAlias = "asyncpg.Connection | asyncpg.Pool"

_FUTURE_COLUMNS = (
    "time, base_time, pred_open, pred_high, pred_low, pred_close, pred_amplitude, p_up, base_close, "
    "real_open, real_close, model_version, predicted_at, intervals::text AS intervals"
)

#: The same columns of the updated row (`f`), for `fill_futures`.
_RETURNING_FILLED = ", ".join("f." + c.strip() for c in _FUTURE_COLUMNS.split(","))


def _insert_sql(table: str, key: str) -> str:
    """Insert predicted rows (`_prediction_args`) into `futures` or `shadow_futures`; first write wins."""
    return f"""INSERT INTO {table} (symbol, interval, time, base_time, pred_open, pred_high, pred_low, pred_close,
                                  pred_amplitude, p_up, base_close, intervals, model_version)
           SELECT $1, $2, p.t, p.b, p.o, p.h, p.l, p.c, p.a, p.u, p.bc, p.i::jsonb, $12
           FROM unnest($3::bigint[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[], $8::float8[],
                       $9::float8[], $10::float8[], $11::float8[], $13::text[]) AS p(t, b, o, h, l, c, a, u, bc, i)
           ON CONFLICT ({key}) DO NOTHING"""


def _prediction_args(symbol: str, interval: str, predictions: Sequence[NextCandle], model_version: str,
                     levels: tuple[float, ...]) -> list[Any]:
    return [
        symbol,
        interval,
        [p.target_time for p in predictions],
        [p.base_time for p in predictions],
        [p.open for p in predictions],
        [p.high for p in predictions],
        [p.low for p in predictions],
        [p.close for p in predictions],
        [p.amplitude for p in predictions],
        [p.p_up for p in predictions],
        [p.base_close for p in predictions],
        model_version,
        [to_json(served(p.intervals, levels)) for p in predictions],
    ]


def _fill_sql(table: str) -> str:
    """Write the real candle (`_candle_args`) into the rows of `table` that predicted it, once.

    `time = ANY(...)` repeats the join key so that the primary key is used whatever plan the
    prepared statement gets (a generic plan does not know the array holds one element).
    """
    return f"""UPDATE {table} f SET
               real_open = COALESCE(f.real_open, c.open),
               real_high = COALESCE(f.real_high, c.high),
               real_low = COALESCE(f.real_low, c.low),
               real_close = COALESCE(f.real_close, c.close),
               err_close = COALESCE(f.err_close, c.close - f.pred_close),
               filled_at = COALESCE(f.filled_at, now())
           FROM unnest($3::bigint[], $4::float8[], $5::float8[], $6::float8[], $7::float8[])
                AS c(time, open, high, low, close)
           WHERE f.symbol = $1 AND f.interval = $2 AND f.time = ANY($3::bigint[]) AND f.time = c.time"""


def _candle_args(symbol: str, interval: str, candles: pd.DataFrame) -> list[Any]:
    return [symbol, interval, candles["open_time"].to_numpy(np.int64).tolist(), candles["open"].tolist(),
            candles["high"].tolist(), candles["low"].tolist(), candles["close"].tolist()]


async def insert_predictions(
    db: Db, symbol: str, interval: str, predictions: Sequence[NextCandle], model_version: str,
    levels: tuple[float, ...] = SERVED_LEVELS,
) -> list[FutureRow]:
    """Insert rows for predicted candles that have none yet; returns the rows inserted."""
    if not predictions:
        return []
    rows = await db.fetch(
        _insert_sql("futures", "symbol, interval, time") + f" RETURNING {_FUTURE_COLUMNS}",
        *_prediction_args(symbol, interval, predictions, model_version, levels),
    )
    return [future_row(r) for r in rows]


async def insert_shadow(
    db: Db, symbol: str, interval: str, predictions: Sequence[NextCandle], model_version: str,
    levels: tuple[float, ...] = SERVED_LEVELS,
) -> None:
    """A challenger's predictions into `shadow_futures` (first write wins, as in `futures`)."""
    if predictions:
        await db.execute(_insert_sql("shadow_futures", "symbol, interval, model_version, time"),
                         *_prediction_args(symbol, interval, predictions, model_version, levels))


async def fill_shadow(db: Db, symbol: str, interval: str, candles: pd.DataFrame) -> None:
    """The real candle into every challenger's row that predicted it (once)."""
    if not candles.empty:
        await db.execute(_fill_sql("shadow_futures"), *_candle_args(symbol, interval, candles))


async def stored_predictions(db: Db, symbol: str, interval: str, times: Sequence[int]) -> list[FutureRow]:
    """The stored rows for these target times, oldest first."""
    rows = await db.fetch(
        f"SELECT {_FUTURE_COLUMNS} FROM futures WHERE symbol = $1 AND interval = $2 AND time = ANY($3::bigint[]) "
        "ORDER BY time",
        symbol,
        interval,
        list(times),
    )
    return [future_row(r) for r in rows]


async def fill_futures(db: Db, symbol: str, interval: str, candles: pd.DataFrame) -> list[FutureRow]:
    """Write the real candle into the rows that predicted it (once); returns those rows, oldest first."""
    if candles.empty:
        return []
    rows = await db.fetch(_fill_sql("futures") + f" RETURNING {_RETURNING_FILLED}", *_candle_args(symbol, interval,
                                                                                                  candles))
    return sorted((future_row(r) for r in rows), key=lambda r: r.time)


async def recent_filled(db: Db, symbol: str, interval: str, count: int) -> list[FutureRow]:
    """The last `count` filled rows, oldest first: the rolling window after a restart."""
    rows = await db.fetch(
        f"SELECT {_FUTURE_COLUMNS} FROM futures WHERE symbol = $1 AND interval = $2 AND real_close IS NOT NULL "
        "ORDER BY time DESC LIMIT $3",
        symbol,
        interval,
        count,
    )
    return [future_row(r) for r in reversed(rows)]


async def insert_drift(db: Db, symbol: str, interval: str, drift: Drift, window: int) -> None:
    await db.execute(
        """INSERT INTO drift_events (symbol, interval, window_size, mape, persistence_mape, threshold, reason,
                                     model_version, candle_time)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        symbol,
        interval,
        window,
        drift.stats.mape,
        drift.stats.persistence_mape,
        drift.threshold,
        drift.reason,
        drift.model_version,
        drift.candle_time,
    )


async def last_drift_time(db: Db, symbol: str, interval: str) -> int | None:
    """Candle time of the last drift declared, for the cool-down after a restart."""
    value = await db.fetchval(
        "SELECT max(candle_time) FROM drift_events WHERE symbol = $1 AND interval = $2", symbol, interval
    )
    return None if value is None else int(value)


def future_row(row: asyncpg.Record) -> FutureRow:
    return FutureRow(
        time=row["time"],
        base_time=row["base_time"],
        pred_open=row["pred_open"],
        pred_high=row["pred_high"],
        pred_low=row["pred_low"],
        pred_close=row["pred_close"],
        pred_amplitude=row["pred_amplitude"],
        p_up=row["p_up"],
        base_close=row["base_close"],
        model_version=row["model_version"],
        predicted_at=row["predicted_at"],
        real_open=row["real_open"],
        real_close=row["real_close"],
        intervals=from_json(row["intervals"]),
    )
