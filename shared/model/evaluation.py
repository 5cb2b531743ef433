"""A model beside the baselines, on the same rows, with the leakage alarm.

The trainer compares a candidate with the champion by evaluating both on the same candles and
the same end indices (`common_end_indices`), so the two sets of numbers are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shared.model.baselines import actual_candles, all_baselines
from shared.model.dataset import valid_end_indices
from shared.model.forecast import Forecast
from shared.model.forecaster import Forecaster
from shared.model.horizons import reachable
from shared.model.metrics import forecast_metrics, horizon_metrics
from shared.model.report import leakage_alarms
from shared.model.trading import Strategy

MODEL = "model"


@dataclass
class Evaluation:
    """Forecasts of the model and of each baseline on the same rows, and their metrics."""

    end_indices: np.ndarray
    base_times: np.ndarray
    base_close: np.ndarray
    actual: Forecast
    forecasts: dict[str, Forecast]
    interval_ms: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)
    #: Direct horizons h > 1: h -> (actual close at t+h, the model's forecast, the close at t), on
    #: the rows whose candle h steps later exists.
    horizons: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def by_horizon(self) -> dict[str, dict[str, dict[str, float]]]:
        """{"model": {"1": metrics, "3": ..., "12": ...}, "persistence": {...}}: each horizon against
        its own persistence. Horizon 1 is the model's next candle."""
        model = {"1": horizon_metrics(self.actual.close, self.forecasts[MODEL].close, self.base_close)}
        persistence = {"1": horizon_metrics(self.actual.close, self.base_close, self.base_close)}
        for h, (actual, predicted, base) in sorted(self.horizons.items()):
            model[str(h)] = horizon_metrics(actual, predicted, base)
            persistence[str(h)] = horizon_metrics(actual, base, base)
        return {MODEL: model, "persistence": persistence}

    def metrics_with_horizons(self) -> dict[str, dict[str, Any]]:
        """`metrics`, with `by_horizon` inside the model's and persistence's blocks (for JSON)."""
        nested = self.by_horizon()
        return {name: {**m, **({"by_horizon": nested[name]} if name in nested else {})}
                for name, m in self.metrics.items()}

    def __post_init__(self) -> None:
        if not self.metrics:
            self.metrics = compute_all(self.actual, self.forecasts, self.base_close)
        if not self.alarms and MODEL in self.metrics:
            self.alarms = leakage_alarms(self.metrics[MODEL], self.interval_ms)

    def trading(self, strategy: Strategy) -> dict[str, float]:
        """The model's `p_up` traded on these rows (`shared.model.trading`)."""
        return strategy.report(self.forecasts[MODEL].p_up, self.base_close, self.actual.close)

    @property
    def model_metrics(self) -> dict[str, float]:
        return self.metrics[MODEL]

    @property
    def baseline_metrics(self) -> dict[str, dict[str, float]]:
        return {name: m for name, m in self.metrics.items() if name != MODEL}

    @classmethod
    def pooled(cls, parts: Sequence[Evaluation]) -> Evaluation:
        """All rows of several evaluations (e.g. backtest folds) as one, metrics recomputed."""
        if not parts:
            raise ValueError("nothing to pool")
        names = list(parts[0].forecasts)
        return cls(
            end_indices=np.concatenate([p.end_indices for p in parts]),
            base_times=np.concatenate([p.base_times for p in parts]),
            base_close=np.concatenate([p.base_close for p in parts]),
            actual=Forecast.concat([p.actual for p in parts]),
            forecasts={n: Forecast.concat([p.forecasts[n] for p in parts]) for n in names},
            interval_ms=parts[0].interval_ms,
            horizons={h: tuple(np.concatenate([p.horizons[h][i] for p in parts]) for i in range(3))  # type: ignore[misc]
                      for h in set.intersection(*(set(p.horizons) for p in parts))},
        )


def compute_all(
    actual: Forecast, forecasts: dict[str, Forecast], base_close: np.ndarray
) -> dict[str, dict[str, float]]:
    """Metrics of every forecast, skill and Diebold-Mariano always against persistence."""
    reference = forecasts["persistence"]
    return {name: forecast_metrics(actual, f, base_close, reference) for name, f in forecasts.items()}


def evaluable_end_indices(candles: pd.DataFrame, model: Forecaster, since_ms: int | None = None) -> np.ndarray:
    """End indices with full gap-free history and a known next candle (optionally from a time on).

    `since_ms` keeps rows whose predicted candle opens at or after it (e.g. a test-period start).
    """
    times = candles["open_time"].to_numpy(np.int64)
    ends = valid_end_indices(times, model.interval_ms, model.window, with_target=True)
    if since_ms is not None:
        ends = ends[times[ends + 1] >= since_ms]
    return ends


def common_end_indices(candles: pd.DataFrame, models: Sequence[Forecaster], since_ms: int | None = None) -> np.ndarray:
    """Rows every model can be evaluated on: what a fair candidate-vs-champion comparison uses."""
    sets = [evaluable_end_indices(candles, m, since_ms) for m in models]
    common = sets[0]
    for other in sets[1:]:
        common = np.intersect1d(common, other)
    return common


def evaluate_forecast(
    candles: pd.DataFrame, end_indices: np.ndarray, model_forecast: Forecast, model: Forecaster
) -> Evaluation:
    """Put an already computed model forecast beside the baselines on the same rows."""
    ends = np.asarray(end_indices, dtype=np.int64)
    forecasts = {MODEL: model_forecast, **all_baselines(candles, ends, model.preprocessing)}
    return Evaluation(
        end_indices=ends,
        base_times=candles["open_time"].to_numpy(np.int64)[ends],
        base_close=candles["close"].to_numpy(np.float64)[ends],
        actual=actual_candles(candles, ends),
        forecasts=forecasts,
        interval_ms=model.interval_ms,
    )


def evaluate(
    loaded: Forecaster,
    candles: pd.DataFrame,
    *,
    end_indices: Sequence[int] | np.ndarray | None = None,
    since_ms: int | None = None,
) -> Evaluation:
    """Evaluate `loaded` beside persistence, mean drift and EMA on `candles`.

    Rows: `end_indices` if given (positions of the last candle seen; the next must exist),
    else every evaluable row, optionally only those predicting candles from `since_ms` on.
    """
    if end_indices is None:
        ends = evaluable_end_indices(candles, loaded, since_ms)
    else:
        ends = np.asarray(end_indices, dtype=np.int64)
        if len(ends) and ends.max() + 1 >= len(candles):
            raise ValueError("every end index needs its next candle to evaluate against")
    if len(ends) == 0:
        raise ValueError(f"no rows to evaluate: the model needs {loaded.history_needed + 1} consecutive candles")
    evaluation = evaluate_forecast(candles, ends, loaded.forecast(candles, ends), loaded)
    times = candles["open_time"].to_numpy(np.int64)
    close = candles["close"].to_numpy(np.float64)
    for h, predicted in loaded.forecast_horizons(candles, ends).items():
        keep = np.isin(ends, reachable(times, ends, h, loaded.interval_ms))
        rows = ends[keep]
        evaluation.horizons[h] = (close[rows + h], predicted[keep], close[rows])
    return evaluation
