"""Generated candles with a known, learnable structure, for tests and benchmarks.

Real market data cannot live in the repository, and a test of "the model learns" needs a series
where there is something to learn: here log returns follow an AR(1) process, so the next
return is partly predictable from the last one and a working model must beat persistence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.market.binance_csv import frame_from_arrays

DEFAULT_START_MS = 1_696_118_400_000  # 2023-10-01T00:00:00Z


def synthetic_candles(
    n: int,
    *,
    phi: float = 0.6,
    sigma: float = 0.002,
    start_price: float = 30_000.0,
    start_ms: int = DEFAULT_START_MS,
    interval_ms: int = 300_000,
    seed: int = 0,
) -> pd.DataFrame:
    """`n` consecutive candles in the shape `shared.market.binance_csv` returns.

    Close-to-close log returns are AR(1) with coefficient `phi` and innovation scale `sigma`;
    each candle opens at the previous close (as Binance's do), wicks and volumes are random.
    `phi=0` gives a random walk, where persistence is the best possible forecast.
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n) * sigma
    returns = np.empty(n)
    previous = 0.0
    for i in range(n):
        previous = phi * previous + noise[i]
        returns[i] = previous
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[start_price], close[:-1]])
    wick = sigma * 0.5
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(n)) * wick)
    low = np.minimum(open_, close) / np.exp(np.abs(rng.standard_normal(n)) * wick)
    # Round like an exchange would, keeping the candle consistent.
    open_, close = np.round(open_, 2), np.round(close, 2)
    high = np.maximum(np.ceil(high * 100) / 100, np.maximum(open_, close))
    low = np.minimum(np.floor(low * 100) / 100, np.minimum(open_, close))
    volume = np.round(rng.lognormal(3.0, 0.5, n) * (1 + 200 * np.abs(returns)), 5)
    trades = np.maximum(1, (volume * rng.uniform(40, 60, n))).astype(np.int64)
    share = np.clip(0.5 + 40 * returns + rng.normal(0, 0.05, n), 0.0, 1.0)
    taker_base = np.round(volume * share, 5)
    open_time = start_ms + interval_ms * np.arange(n, dtype=np.int64)
    return frame_from_arrays(open_time, open_, high, low, close, volume, trades, taker_base, interval_ms)
