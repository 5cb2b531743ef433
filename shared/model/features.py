"""Model inputs computed from candles alone, causally and without price levels.

Every feature of row t is a function of rows t-LOOKBACK .. t only (never of a later row), and
every feature is a ratio or a log ratio, so the network never sees a price level or a volume
level: a model trained while BTC traded at 30k reads a 100k market the same way. Rolling
statistics use a fixed lookback (no exponential memory), so features computed on the last
`window + LOOKBACK` candles equal, bit for bit, those computed on the full history: the live
predictor can keep a short buffer and still see what the model saw in training.

Pure NumPy (no pandas rolling, no TensorFlow), because the predictor computes these on every
closed candle and pays for each millisecond.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

#: Bump when a feature's definition changes: artifacts record it and refuse to load otherwise.
FEATURE_VERSION = 1

#: Rows before row t that row t's features read. A window of W rows needs W + LOOKBACK candles.
LOOKBACK = 48
_ROLL = 48  # rolling statistics span (4 hours of 5m candles)
_MOMENTUM = 12

FEATURES: tuple[str, ...] = (
    "ret_close",  # log(close / previous close)
    "ret_open",  # log(open / previous close): the gap, usually ~0 on Binance
    "range",  # log(high / low)
    "body",  # log(close / open)
    "upper_wick",  # log(high / max(open, close))
    "lower_wick",  # log(min(open, close) / low)
    "volume_ratio",  # log1p(volume / rolling mean volume)
    "trades_ratio",  # log1p(trades / rolling mean trades)
    "taker_buy_share",  # taker buy volume / volume - 0.5
    "range_ratio",  # log1p(range / rolling mean range)
    "volatility",  # log(rolling RMS of ret_close)
    "momentum",  # log(close / close 12 rows ago)
    "sma_deviation",  # log(close / rolling mean close)
    "tod_sin",  # time of day of the candle's open, on the unit circle
    "tod_cos",
    "dow_sin",  # day of week, on the unit circle
    "dow_cos",
)

#: Features that read Binance's own kline fields (volume, trade count, taker volume).
EXCHANGE_FEATURES: tuple[str, ...] = ("volume_ratio", "trades_ratio", "taker_buy_share")
#: The features of the OHLC variant: open, high, low, close and the open time only, so that a
#: history from any source (a Yahoo Finance download, another exchange, a spreadsheet) can be
#: answered. Volume is left out too: it is optional in such histories, and a ratio to its own
#: rolling mean would be the only feature a missing column could silently turn into a constant.
OHLC_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f not in EXCHANGE_FEATURES)
#: Feature sets by name; an artifact records its set's names, and `TrainConfig.features` picks one.
FEATURE_SETS: dict[str, tuple[str, ...]] = {"full": FEATURES, "ohlc": OHLC_FEATURES}

_DAY_MS = 86_400_000
_WEEK_DAYS = 7


def required_rows(window: int) -> int:
    """Candles needed to compute the features of the last `window` rows exactly."""
    return window + LOOKBACK


def _rolling_mean(values: np.ndarray, span: int) -> np.ndarray:
    """Mean over rows t-span+1 .. t (fewer at the very start); identical wherever computed."""
    if not np.isnan(values).any():  # the usual case: the same sums, without masking a 2-D view twice
        sums = sliding_window_view(np.concatenate([np.zeros(span - 1), values]), span).sum(axis=1)
        full: np.ndarray = sums / np.minimum(np.arange(1, len(values) + 1), span)
        return full
    padded = np.concatenate([np.full(span - 1, np.nan), values])
    view = sliding_window_view(padded, span)
    counts = np.sum(~np.isnan(view), axis=1)
    sums = np.sum(np.where(np.isnan(view), 0.0, view), axis=1)
    result: np.ndarray = sums / counts
    return result


def _shift(values: np.ndarray, periods: int) -> np.ndarray:
    """values[t - periods], with the first row standing in before the series starts."""
    shifted = np.empty_like(values)
    shifted[periods:] = values[:-periods]
    shifted[:periods] = values[0]
    return shifted


def _column(candles: pd.DataFrame, name: str, missing: float) -> np.ndarray:
    if name in candles:
        return candles[name].to_numpy(np.float64)
    return np.full(len(candles), missing)


def compute_features(candles: pd.DataFrame, names: tuple[str, ...] = FEATURES) -> np.ndarray:
    """Feature matrix (rows x len(names), float64) of a time-ordered candle frame.

    Rows before LOOKBACK see a shorter history; the dataset never uses them as inputs. A frame
    without volume, trades or taker volume is accepted when `names` reads none of them.
    """
    absent = [n for n in ("volume", "trades", "taker_buy_base_volume") if n not in candles]
    if absent and set(names) & set(EXCHANGE_FEATURES):
        raise ValueError(f"features {sorted(set(names) & set(EXCHANGE_FEATURES))} need columns {absent}")
    unknown = set(names) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}")
    o = candles["open"].to_numpy(np.float64)
    h = candles["high"].to_numpy(np.float64)
    low = candles["low"].to_numpy(np.float64)
    c = candles["close"].to_numpy(np.float64)
    volume = _column(candles, "volume", 1.0)
    trades = _column(candles, "trades", 1.0)
    taker = _column(candles, "taker_buy_base_volume", 0.5)
    open_time = candles["open_time"].to_numpy(np.int64)
    if len(c) == 0:
        return np.zeros((0, len(names)))

    prev_close = _shift(c, 1)
    ret_close = np.log(c / prev_close)
    ret_open = np.log(o / prev_close)
    bar_range = np.log(h / low)
    body = np.log(c / o)
    upper = np.log(h / np.maximum(o, c))
    lower = np.log(np.minimum(o, c) / low)
    tiny = 1e-12
    volume_ratio = np.log1p(volume / (_rolling_mean(volume, _ROLL) + tiny))
    trades_ratio = np.log1p(trades / (_rolling_mean(trades, _ROLL) + tiny))
    taker_share = np.where(volume > 0, taker / np.where(volume > 0, volume, 1.0), 0.5) - 0.5
    range_ratio = np.log1p(bar_range / (_rolling_mean(bar_range, _ROLL) + tiny))
    volatility = np.log(np.sqrt(_rolling_mean(ret_close**2, _ROLL)) + 1e-5)
    momentum = np.log(c / _shift(c, _MOMENTUM))
    sma_deviation = np.log(c / _rolling_mean(c, _ROLL))
    day_phase = 2 * np.pi * (open_time % _DAY_MS) / _DAY_MS
    # 1970-01-01 was a Thursday; +3 makes Monday 0.
    week_phase = 2 * np.pi * ((open_time // _DAY_MS + 3) % _WEEK_DAYS) / _WEEK_DAYS
    columns = [
        ret_close,
        ret_open,
        bar_range,
        body,
        upper,
        lower,
        volume_ratio,
        trades_ratio,
        taker_share,
        range_ratio,
        volatility,
        momentum,
        sma_deviation,
        np.sin(day_phase),
        np.cos(day_phase),
        np.sin(week_phase),
        np.cos(week_phase),
    ]
    if names != FEATURES:
        columns = [columns[FEATURES.index(name)] for name in names]
    return np.stack(columns, axis=1)


def feature_frame(candles: pd.DataFrame) -> pd.DataFrame:
    """`compute_features` with named columns and the candles' index, for people and notebooks."""
    return pd.DataFrame(compute_features(candles), columns=list(FEATURES), index=candles.index)
