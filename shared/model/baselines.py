"""The forecasts a model has to beat, on exactly the model's rows.

* persistence: the next candle opens and closes at the last close, its high and low repeat the
  last candle's; p_up = 0.5 (it knows nothing about direction). At 5 minutes this is the bar:
  prices are close to a random walk, and a random walk's best forecast is the last value.
* mean drift: every log ratio (open/high/low/close vs last close) is its mean over the training
  rows; p_up is the training rows' share of up candles. The model with its inputs switched off.
* EMA: every log ratio is an exponential moving average (span 12) of the recently realised
  ones, p_up is the EMA of recent up candles: "the next candle looks like the last hour".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.model.dataset import TARGETS, Preprocessing
from shared.model.forecast import Forecast
from shared.model.intervals import LEVELS, label, naive_bounds

EMA_SPAN = 12
BASELINES: tuple[str, ...] = ("persistence", "mean_drift", "ema")


def actual_candles(candles: pd.DataFrame, end_indices: np.ndarray) -> Forecast:
    """The real next candles as a `Forecast` whose p_up is the 0/1 outcome (close > open)."""
    nxt = np.asarray(end_indices) + 1
    o, h, low, c = (candles[name].to_numpy(np.float64)[nxt] for name in ("open", "high", "low", "close"))
    return Forecast(open=o, high=h, low=low, close=c, p_up=(c > o).astype(np.float64))


def persistence(candles: pd.DataFrame, end_indices: np.ndarray) -> Forecast:
    ends = np.asarray(end_indices)
    close = candles["close"].to_numpy(np.float64)
    c = close[ends]
    # The naive interval: last close ± the empirical quantile of recent absolute returns.
    bounds = {label("close", level): b for level, b in naive_bounds(close, ends, LEVELS).items()}
    return Forecast(
        open=c,
        high=candles["high"].to_numpy(np.float64)[ends],
        low=candles["low"].to_numpy(np.float64)[ends],
        close=c,
        p_up=np.full(len(ends), 0.5),
        bounds=bounds,
    )


def mean_drift(candles: pd.DataFrame, end_indices: np.ndarray, preprocessing: Preprocessing) -> Forecast:
    ends = np.asarray(end_indices)
    base = candles["close"].to_numpy(np.float64)[ends]
    mean = preprocessing.target_scaler.mean
    ratios = np.tile(mean, (len(ends), 1))
    return Forecast.from_log_ratios(base, ratios, np.full(len(ends), preprocessing.up_rate))


def ema(candles: pd.DataFrame, end_indices: np.ndarray, span: int = EMA_SPAN) -> Forecast:
    """EMA (adjust=False) of realised log ratios up to and including the end candle."""
    ends = np.asarray(end_indices)
    close = candles["close"].to_numpy(np.float64)
    prev_close = np.concatenate([[close[0]], close[:-1]])
    realised = {name: np.log(candles[name].to_numpy(np.float64) / prev_close) for name in TARGETS}
    # Row 0 has no previous close and stands in with its own; its weight is gone after ~100 rows,
    # and evaluated rows start after window + lookback rows.
    smoothed = pd.DataFrame(realised).ewm(span=span, adjust=False).mean()
    ratios = smoothed.loc[:, list(TARGETS)].to_numpy(np.float64)[ends]
    up = (close > candles["open"].to_numpy(np.float64)).astype(np.float64)
    p_up = pd.Series(up).ewm(span=span, adjust=False).mean().to_numpy()[ends]
    return Forecast.from_log_ratios(close[ends], ratios, np.clip(p_up, 0.01, 0.99))


def all_baselines(candles: pd.DataFrame, end_indices: np.ndarray, preprocessing: Preprocessing) -> dict[str, Forecast]:
    return {
        "persistence": persistence(candles, end_indices),
        "mean_drift": mean_drift(candles, end_indices, preprocessing),
        "ema": ema(candles, end_indices),
    }
