"""Rows for the gateway's tests: candles, a champion with its series, live futures, drift, jobs.

The layout, for `n` candles starting at `START` (5m): the champion was trained on the first
60%, validated on the next 20% and tested on the last 20% of the first `n - LIVE` candles; the
last `LIVE` candles have live futures rows, all filled but the newest prediction, which is for
the candle after the last one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg
import numpy as np

START = 1_719_792_000_000  # 2024-07-01T00:00:00Z
STEP = 300_000
LIVE = 24
CHAMPION = "m-20240701-champion"
OLD_MODEL = "m-20240601-retired"

METRICS = {"close_mae": 21.5, "close_rmse": 30.2, "close_mape": 0.034, "direction_accuracy": 0.52, "skill": 0.01}
BASELINES = {
    "persistence": {"close_mae": 21.7, "close_rmse": 30.5, "close_mape": 0.0345, "direction_accuracy": 0.5},
    "ema": {"close_mae": 23.0, "close_rmse": 32.0, "close_mape": 0.036, "direction_accuracy": 0.49},
}


@dataclass(frozen=True)
class Seeded:
    symbol: str
    interval: str
    times: list[int]  # open times of the stored candles
    test_start: int
    data_end: int
    series_times: list[int]  # candles with a series row of the champion
    live_times: list[int]  # candles with a futures row (filled)
    next_time: int  # the newest prediction, not filled yet

    @property
    def n(self) -> int:
        return len(self.times)


def candle_rows(n: int, start: int = START, seed: int = 7, price: float = 60_000.0) -> list[tuple]:
    """Consistent 5m klines (open = previous close, wicks around the body)."""
    rng = np.random.default_rng(seed)
    closes = price * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    opens = np.concatenate([[price], closes[:-1]])
    rows = []
    for i in range(n):
        o, c = round(float(opens[i]), 2), round(float(closes[i]), 2)
        h = round(max(o, c) * (1 + abs(rng.normal(0, 0.0008))), 2)
        low = round(min(o, c) * (1 - abs(rng.normal(0, 0.0008))), 2)
        volume = round(float(rng.lognormal(3, 0.4)), 5)
        t = start + i * STEP
        rows.append((t, t + STEP - 1, o, h, low, c, volume, round(volume * c, 4), int(volume * 50),
                     round(volume * 0.5, 5), round(volume * 0.5 * c, 4)))
    return rows


async def seed(db: asyncpg.Connection, n: int = 288, symbol: str = "BTCUSDT", interval: str = "5m") -> Seeded:
    rows = candle_rows(n)
    await db.copy_records_to_table(
        "candles",
        records=[(symbol, interval, *r) for r in rows],
        columns=["symbol", "interval", "open_time", "close_time", "open", "high", "low", "close", "volume",
                 "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume"],
    )
    times = [r[0] for r in rows]
    history = n - LIVE
    validation_start, test_start = times[int(history * 0.6)], times[int(history * 0.8)]
    data_end = times[history - 1]
    await db.execute(
        """INSERT INTO models (version, symbol, interval, data_start, data_end, test_start, metrics,
               baseline_metrics, status, artifact_path, created_at, promoted_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'champion', $9, now(), now()),
                  ($10, $2, $3, $4, $5, $6, '{}', '{}', 'retired', 'old', now() - interval '30 days', NULL)""",
        CHAMPION, symbol, interval, times[0], data_end, test_start, json.dumps(METRICS), json.dumps(BASELINES),
        CHAMPION, OLD_MODEL,
    )
    # The champion's series: its predictions over the history (from the second candle on).
    series = []
    for i in range(1, history):
        t, _, o, h, low = rows[i][:5]
        split = "train" if t < validation_start else "validation" if t < test_start else "test"
        prev_close = rows[i - 1][5]
        p_up = 0.8 if (i % 3) else 0.2  # right on some, wrong on others
        series.append((symbol, interval, t, CHAMPION, prev_close, max(prev_close, h), min(prev_close, low),
                       prev_close * 1.001, (h - low) / o, p_up, split))
    await db.copy_records_to_table(
        "series",
        records=series,
        columns=["symbol", "interval", "time", "model_version", "pred_open", "pred_high", "pred_low", "pred_close",
                 "pred_amplitude", "p_up", "split"],
    )
    # Live futures: one per candle after the history, filled, and the newest one still open.
    live_times = times[history:]
    for i in range(history, n + 1):
        t = START + i * STEP
        base = rows[i - 1]
        real = rows[i] if i < n else None
        await db.execute(
            """INSERT INTO futures (symbol, interval, time, base_time, pred_open, pred_high, pred_low, pred_close,
                   pred_amplitude, p_up, base_close, real_open, real_high, real_low, real_close, err_close,
                   model_version, predicted_at, filled_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0.002, 0.6, $5, $9, $10, $11, $12, $13, $14,
                       now() - interval '10 seconds', CASE WHEN $12::float8 IS NULL THEN NULL ELSE now() END)""",
            symbol, interval, t, base[0], base[5], base[5] * 1.002, base[5] * 0.998, base[5] * 1.0005,
            real[2] if real else None, real[3] if real else None, real[4] if real else None,
            real[5] if real else None, (real[5] - base[5] * 1.0005) if real else None, CHAMPION,
        )
    await db.execute(
        """INSERT INTO drift_events (symbol, interval, detected_at, window_size, mape, persistence_mape, threshold,
               reason, model_version)
           VALUES ($1, $2, now() - interval '2 hours', 288, 0.9, 0.6, 0.8, 'mape above threshold', $3),
                  ($1, $2, now() - interval '1 hour', 288, 1.1, 0.7, 0.8, 'mape/persistence above ratio', $3)""",
        symbol, interval, CHAMPION,
    )
    await db.execute(
        """INSERT INTO job_logs (job_name, status, message, started_at, finished_at)
           VALUES ('train BTCUSDT 5m', 'success', 'promoted', now() - interval '3 hours', now() - interval '2 hours'),
                  ('train BTCUSDT 5m', 'rejected', 'worse than champion', now() - interval '1 hour', now()),
                  ('backfill BTCUSDT 5m', 'running', '', now() - interval '5 minutes', NULL)"""
    )
    return Seeded(symbol, interval, times, test_start, data_end, [s[2] for s in series], live_times, START + n * STEP)
