"""Predicted candles: arrays for evaluation, `NextCandle` for one prediction.

Amplitude is defined once, here: (high - low) / open of the predicted candle, as a fraction
(0.004 means the candle spans 0.4% of its open). Predicted high and low are widened when
needed so that low <= min(open, close) and high >= max(open, close): a candle the exchange
could not print is not a forecast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from shared.messaging.events import Prediction
from shared.model.dataset import TARGETS


def amplitude(open_: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """(high - low) / open, as a fraction."""
    result: np.ndarray = (high - low) / open_
    return result


@dataclass
class Forecast:
    """Predicted open/high/low/close and p_up for many samples (one entry per end index)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    p_up: np.ndarray
    #: Interval label (`close_80`, see `shared.model.intervals.label`) -> (lo, hi) prices.
    bounds: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The one place p_up is clamped: every model kind's output passes through here, so
        # events, rows and responses carry a probability without clamping it again.
        self.p_up = np.clip(np.asarray(self.p_up, np.float64), 0.0, 1.0)

    @classmethod
    def from_log_ratios(cls, base_close: np.ndarray, log_ratios: np.ndarray, p_up: np.ndarray) -> Forecast:
        """Rebuild prices from log(price / last close) in `TARGETS` order, made consistent."""
        prices = base_close[:, None] * np.exp(log_ratios)
        o, h, low, c = (prices[:, TARGETS.index(name)] for name in ("open", "high", "low", "close"))
        high = np.maximum(h, np.maximum(o, c))
        low = np.minimum(low, np.minimum(o, c))
        return cls(open=o, high=high, low=low, close=c, p_up=np.asarray(p_up, np.float64))

    @classmethod
    def concat(cls, parts: list[Forecast]) -> Forecast:
        labels = set.intersection(*(set(p.bounds) for p in parts)) if parts else set()
        return cls(
            **{
                name: np.concatenate([getattr(p, name) for p in parts])
                for name in ("open", "high", "low", "close", "p_up")
            },
            bounds={
                k: (np.concatenate([p.bounds[k][0] for p in parts]), np.concatenate([p.bounds[k][1] for p in parts]))
                for k in sorted(labels)
            },
        )

    @property
    def amplitude(self) -> np.ndarray:
        return amplitude(self.open, self.high, self.low)

    def __len__(self) -> int:
        return len(self.close)


@dataclass(frozen=True)
class NextCandle:
    """One predicted candle. Prices are absolute; `p_up` is P(close > open) of that candle."""

    open: float
    high: float
    low: float
    close: float
    amplitude: float
    p_up: float
    #: Open time (epoch ms) of the last candle the model saw, and of the predicted candle.
    base_time: int
    target_time: int
    #: The last known close: the persistence forecast, and the base of every log ratio.
    base_close: float
    #: Calibrated intervals: label (`close_80`, `high_95`, ...) -> (lo, hi); empty for a model without.
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_prediction(self, symbol: str, interval: str, model_version: str) -> Prediction:
        """The `Prediction` event the predictor publishes."""
        return Prediction(
            symbol=symbol,
            interval=interval,
            base_time=self.base_time,
            target_time=self.target_time,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            amplitude=self.amplitude,
            p_up=self.p_up,
            model_version=model_version,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def next_candles(
    forecast: Forecast, base_times: np.ndarray, base_close: np.ndarray, interval_ms: int
) -> list[NextCandle]:
    """Split a `Forecast` into `NextCandle`s."""
    amp = forecast.amplitude
    return [
        NextCandle(
            open=float(forecast.open[i]),
            high=float(forecast.high[i]),
            low=float(forecast.low[i]),
            close=float(forecast.close[i]),
            amplitude=float(amp[i]),
            p_up=float(forecast.p_up[i]),
            base_time=int(base_times[i]),
            target_time=int(base_times[i]) + interval_ms,
            base_close=float(base_close[i]),
            intervals={k: (float(lo[i]), float(hi[i])) for k, (lo, hi) in forecast.bounds.items()},
        )
        for i in range(len(forecast))
    ]
