"""The SQL of the read endpoints, on the read-only pool. One function per question.

Paging is by time, never by offset: a page boundary stays put while the ingestor appends.
Without `start`, a page is the newest `limit` rows before `end`; with `start`, the oldest
`limit` rows from `start` on. Both come back in ascending time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

# Epoch milliseconds of a timestamptz column, the unit of every time in the API.
_MS = "(extract(epoch FROM {col}) * 1000)::bigint"


@dataclass(frozen=True)
class Paging:
    start: int | None
    end: int | None
    limit: int

    @property
    def forward(self) -> bool:
        return self.start is not None

    def sql(self, column: str, args: list[Any]) -> tuple[str, str]:
        """(`AND ...` range condition, `ORDER BY ... LIMIT ...`) for `column`; appends to `args`."""
        where = ""
        if self.start is not None:
            args.append(self.start)
            where += f" AND {column} >= ${len(args)}"
        if self.end is not None:
            args.append(self.end)
            where += f" AND {column} < ${len(args)}"
        args.append(self.limit)
        order = f" ORDER BY {column} {'ASC' if self.forward else 'DESC'} LIMIT ${len(args)}"
        return where, order

    def arrange(self, rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
        return rows if self.forward else rows[::-1]

    def cursors(self, times: list[int]) -> dict[str, int | None]:
        """`next_start` / `prev_end` when the page is full (there may be more that way)."""
        return self.edges(len(times), times[0] if times else None, times[-1] if times else None)

    def edges(self, count: int, first: int | None, last: int | None) -> dict[str, int | None]:
        """`cursors` from a page's row count and its first and last time."""
        full = count >= self.limit
        return {
            "next_start": last + 1 if full and self.forward and last is not None else None,
            "prev_end": first if full and not self.forward else None,
        }


def _json(value: Any) -> dict[str, Any]:
    """asyncpg hands jsonb over as text unless a codec is set; the shared pool sets none."""
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    return dict(parsed) if isinstance(parsed, dict) else {}


async def candles(pool: asyncpg.Pool, symbol: str, interval: str, paging: Paging) -> list[asyncpg.Record]:
    args: list[Any] = [symbol, interval]
    where, order = paging.sql("open_time", args)
    rows = await pool.fetch(
        f"""SELECT open_time, close_time, open, high, low, close, volume, quote_volume, trades,
                   taker_buy_base_volume, taker_buy_quote_volume
            FROM candles WHERE symbol = $1 AND interval = $2{where}{order}""",
        *args,
    )
    return paging.arrange(rows)


_MODEL_COLUMNS = f"""version, symbol, interval, status, kind, data_start, data_end, test_start, metrics,
    baseline_metrics, {_MS.format(col="created_at")} AS created_at,
    {_MS.format(col="promoted_at")} AS promoted_at"""


def model_dict(row: asyncpg.Record) -> dict[str, Any]:
    model = dict(row)
    model["metrics"] = _json(model["metrics"])
    model["baseline_metrics"] = _json(model["baseline_metrics"])
    return model


async def champion(pool: asyncpg.Pool, symbol: str, interval: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        f"""SELECT {_MODEL_COLUMNS}, artifact_path FROM models
            WHERE symbol = $1 AND interval = $2 AND status = 'champion'""",
        symbol,
        interval,
    )
    return model_dict(row) if row else None


async def model(pool: asyncpg.Pool, symbol: str, interval: str, version: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        f"SELECT {_MODEL_COLUMNS} FROM models WHERE symbol = $1 AND interval = $2 AND version = $3",
        symbol,
        interval,
        version,
    )
    return model_dict(row) if row else None


async def models(
    pool: asyncpg.Pool, symbol: str, interval: str, status: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"""SELECT {_MODEL_COLUMNS} FROM models
            WHERE symbol = $1 AND interval = $2 AND ($3::text IS NULL OR status = $3)
            ORDER BY created_at DESC, version DESC LIMIT $4""",
        symbol,
        interval,
        status,
        limit,
    )
    return [model_dict(r) for r in rows]


@dataclass(frozen=True)
class SeriesPage:
    """A page of `/series` as Postgres wrote it: the items already JSON, and what the envelope needs."""

    items_json: str
    count: int
    first: int | None
    last: int | None
    judged: int  # points with a p_up
    hits: int  # of them, the direction right


async def series(
    pool: asyncpg.Pool, symbol: str, interval: str, version: str | None, paging: Paging,
    test_start: int | None, test_end: int | None,
) -> SeriesPage:
    """Candles joined with `version`'s series rows, falling back to the live futures rows, each
    point with its errors, direction hit and test flag: written as JSON by Postgres.

    The page of candles first, then each candle's series and futures row by its primary key:
    `OFFSET 0` keeps the planner from flattening the lateral lookups into a join that filters
    on time after reading every row of the model (what it did on a table not analyzed yet, as
    after an import: 111 ms for a day of 5m beside 2,000 series rows; 1.9 ms this way, analyzed
    or not). Postgres builds the points' JSON (`json_agg`): in the gateway, decoding 288 rows and
    building each point in Python cost ~2.5 ms a request, most of what a day of `/series` cost.
    The numbers are the same float8 values either way (shortest round-trip text).
    """
    args: list[Any] = [symbol, interval, version, test_start, test_end]
    where, order = paging.sql("open_time", args)
    row = await pool.fetchrow(
        f"""WITH page AS (
                SELECT c.open_time AS time, c.open, c.high, c.low, c.close,
                       COALESCE(s.pred_open, f.pred_open) AS pred_open,
                       COALESCE(s.pred_high, f.pred_high) AS pred_high,
                       COALESCE(s.pred_low, f.pred_low) AS pred_low,
                       COALESCE(s.pred_close, f.pred_close) AS pred_close,
                       COALESCE(s.p_up, f.p_up) AS p_up,
                       COALESCE(s.model_version, f.model_version) AS model_version,
                       COALESCE(s.intervals, f.intervals) AS intervals,
                       CASE WHEN s.time IS NOT NULL THEN s.split WHEN f.time IS NOT NULL THEN 'live' END AS split
                FROM (SELECT open_time, open, high, low, close FROM candles
                      WHERE symbol = $1 AND interval = $2{where}{order}) c
                LEFT JOIN LATERAL (SELECT time, pred_open, pred_high, pred_low, pred_close, p_up, model_version,
                                          intervals, split FROM series
                                   WHERE symbol = $1 AND interval = $2 AND model_version = $3 AND time = c.open_time
                                   OFFSET 0) s ON true
                LEFT JOIN LATERAL (SELECT time, pred_open, pred_high, pred_low, pred_close, p_up, model_version,
                                          intervals FROM futures
                                   WHERE symbol = $1 AND interval = $2 AND time = c.open_time OFFSET 0) f ON true
            ), points AS (
                SELECT time, open, high, low, close, pred_open, pred_high, pred_low, pred_close, p_up,
                       CASE WHEN p_up IS NULL THEN NULL ELSE (p_up >= 0.5) = (close > open) END AS direction_hit,
                       {", ".join(f"CASE WHEN pred_{n} IS NULL OR {n} = 0 THEN NULL ELSE ({n} - pred_{n}) / {n} END "
                                  f"AS err_{n}" for n in ("open", "high", "low", "close"))},
                       model_version,
                       CASE WHEN intervals = '{{}}'::jsonb THEN NULL ELSE intervals END AS intervals,
                       split,
                       ($4::bigint IS NOT NULL AND time >= $4 AND ($5::bigint IS NULL OR time <= $5)) AS test
                FROM page
            )
            SELECT count(*) AS count, min(time) AS first, max(time) AS last,
                   count(direction_hit) AS judged, count(*) FILTER (WHERE direction_hit) AS hits,
                   COALESCE(json_agg(points ORDER BY time), '[]')::text AS items
            FROM points""",
        *args,
    )
    return SeriesPage(row["items"], row["count"], row["first"], row["last"], row["judged"], row["hits"])


_FUTURE_COLUMNS = f"""time, base_time, pred_open, pred_high, pred_low, pred_close, pred_amplitude, p_up,
    base_close, real_open, real_high, real_low, real_close, err_close, model_version, intervals::text AS intervals,
    {_MS.format(col="predicted_at")} AS predicted_at, {_MS.format(col="filled_at")} AS filled_at"""


async def futures(pool: asyncpg.Pool, symbol: str, interval: str, paging: Paging) -> list[asyncpg.Record]:
    args: list[Any] = [symbol, interval]
    where, order = paging.sql("time", args)
    rows = await pool.fetch(
        f"SELECT {_FUTURE_COLUMNS} FROM futures WHERE symbol = $1 AND interval = $2{where}{order}",
        *args,
    )
    return paging.arrange(rows)


async def latest_prediction(pool: asyncpg.Pool, symbol: str, interval: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        f"""SELECT {_FUTURE_COLUMNS} FROM futures WHERE symbol = $1 AND interval = $2 ORDER BY time DESC LIMIT 1""",
        symbol,
        interval,
    )
    return row


async def drift(pool: asyncpg.Pool, symbol: str, interval: str, paging: Paging) -> list[asyncpg.Record]:
    args: list[Any] = [symbol, interval]
    detected = _MS.format(col="detected_at")
    where, order = paging.sql(detected, args)
    rows = await pool.fetch(
        f"""SELECT id, {detected} AS detected_at, window_size, mape, persistence_mape, threshold, reason,
                   model_version
            FROM drift_events WHERE symbol = $1 AND interval = $2{where}{order}""",
        *args,
    )
    return paging.arrange(rows)


async def jobs(pool: asyncpg.Pool, job: str | None, status: str | None, paging: Paging) -> list[asyncpg.Record]:
    args: list[Any] = [job, status]
    started = _MS.format(col="started_at")
    where, order = paging.sql(started, args)
    rows = await pool.fetch(
        f"""SELECT id, job_name, status, message, {started} AS started_at,
                   {_MS.format(col="finished_at")} AS finished_at
            FROM job_logs
            WHERE ($1::text IS NULL OR job_name = $1) AND ($2::text IS NULL OR status = $2){where}{order}""",
        *args,
    )
    return paging.arrange(rows)


def _covered(level: int) -> str:
    bounds = f"intervals->'close_{level}'"
    return (f"avg(CASE WHEN {bounds} IS NOT NULL THEN (real_close BETWEEN ({bounds}->>0)::float8 "
            f"AND ({bounds}->>1)::float8)::int END) AS coverage_{level}")


async def leaderboard(pool: asyncpg.Pool, symbol: str, interval: str, versions: list[str],
                      window: int) -> list[asyncpg.Record]:
    """Live scores of `versions` over each one's last `window` filled predictions: the champion's
    rows in `futures`, the challengers' in `shadow_futures`; persistence on the same rows."""
    return await pool.fetch(
        f"""WITH live AS (
                SELECT model_version, time, pred_close, real_open, real_close, base_close, p_up, intervals
                FROM futures WHERE symbol = $1 AND interval = $2 AND real_close IS NOT NULL
                  AND model_version = ANY($3::text[])
                UNION ALL
                SELECT model_version, time, pred_close, real_open, real_close, base_close, p_up, intervals
                FROM shadow_futures WHERE symbol = $1 AND interval = $2 AND real_close IS NOT NULL
                  AND model_version = ANY($3::text[])
            ), recent AS (
                SELECT *, row_number() OVER (PARTITION BY model_version ORDER BY time DESC) AS n FROM live
            )
            SELECT model_version, count(*) AS rows, min(time) AS since, max(time) AS until,
                   avg(abs(real_close - pred_close)) AS close_mae,
                   avg(abs(real_close - base_close)) AS persistence_mae,
                   avg(((p_up >= 0.5) = (real_close > real_open))::int) AS direction_hit_rate,
                   {_covered(80)}, {_covered(95)}
            FROM recent WHERE n <= $4 GROUP BY model_version""",
        symbol,
        interval,
        versions,
        window,
    )
