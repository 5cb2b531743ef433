"""Generated klines for the stand-in: a seeded random walk, with an optional regime change.

The regime change (a price jump, then a volatility burst) exists so that end-to-end tests can
provoke the drift detector on demand: a model trained before the change must do worse after it.
Same seed, same candles, on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.market.binance_csv import frame_from_arrays

# 2024-01-01T00:00:00Z: a fixed start, so generated data is the same wherever it is generated.
DEFAULT_START_MS = 1_704_067_200_000
START_PRICES = {"BTCUSDT": 42_000.0, "ETHUSDT": 2_300.0, "BNBUSDT": 310.0, "SOLUSDT": 100.0}


@dataclass(frozen=True)
class RegimeChange:
    """From `at_ms` on, prices jump by `jump` (log return, 0.1 is about +10%) and volatility is
    multiplied by `vol_factor` for `duration_ms` (None: for the rest of the series)."""

    at_ms: int
    jump: float = 0.08
    vol_factor: float = 4.0
    duration_ms: int | None = None


def generate_candles(
    n: int,
    *,
    interval_ms: int,
    start_ms: int = DEFAULT_START_MS,
    start_price: float = 42_000.0,
    sigma: float = 0.0015,
    seed: int = 0,
    regime: RegimeChange | None = None,
) -> pd.DataFrame:
    """`n` contiguous candles in `shared.market.binance_csv`'s frame shape, opening at `start_ms`."""
    if n <= 0:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    open_time = start_ms + interval_ms * np.arange(n, dtype=np.int64)
    scale = np.full(n, sigma)
    returns = rng.standard_normal(n)
    if regime is not None:
        after = open_time >= regime.at_ms
        until = open_time < regime.at_ms + regime.duration_ms if regime.duration_ms is not None else True
        scale = np.where(after & until, sigma * regime.vol_factor, scale)
        returns = returns * scale
        first = int(np.argmax(after)) if after.any() else None
        if first is not None:
            returns[first] += regime.jump
    else:
        returns = returns * scale
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[start_price], close[:-1]])
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(n)) * scale * 0.6)
    low = np.minimum(open_, close) / np.exp(np.abs(rng.standard_normal(n)) * scale * 0.6)
    # Exchange prices have a tick size; round, then keep the candle consistent.
    open_, close = np.round(open_, 2), np.round(close, 2)
    high = np.maximum(np.round(high, 2), np.maximum(open_, close))
    low = np.minimum(np.round(low, 2), np.minimum(open_, close))
    volume = np.round(rng.lognormal(3.0, 0.6, n) * (1.0 + 150.0 * np.abs(returns)), 5)
    trades = np.maximum(1, volume * rng.uniform(40, 80, n)).astype(np.int64)
    taker_share = np.clip(0.5 + 30.0 * returns + rng.normal(0.0, 0.05, n), 0.0, 1.0)
    taker_base = np.round(volume * taker_share, 5)
    return frame_from_arrays(open_time, open_, high, low, close, volume, trades, taker_base, interval_ms)


def start_price_for(symbol: str, index: int) -> float:
    return START_PRICES.get(symbol.upper(), 100.0 * (1 + index))
