"""Direct forecasts of the close h candles ahead (default 3 and 12; 1 is the model itself).

Each horizon has its own ridge head on the tabular rows of the same scaled features (the last
`lags` candles side by side), trained on the log ratio close[t+h] / close[t] directly: no
prediction is fed back as if it had happened, so errors do not compound, and each horizon is
judged against its own persistence (close[t+h] = close[t]). The heads are fitted on the training
part with the penalty picked on the validation part, for every kind alike, and saved in
`preprocessing.json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.model.dataset import SampleSet
from shared.model.linear_algebra import flat_rows, ridge_path, with_bias

HORIZONS: tuple[int, ...] = (3, 12)
LAGS = 4
ALPHAS: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)


def reachable(open_times: np.ndarray, ends: np.ndarray, horizon: int, interval_ms: int) -> np.ndarray:
    """The end indices whose candle `horizon` steps later exists, with no gap on the way."""
    ends = np.asarray(ends, np.int64)
    ends = ends[ends + horizon < len(open_times)]
    return ends[open_times[ends + horizon] - open_times[ends] == horizon * interval_ms]


@dataclass(frozen=True)
class HorizonHeads:
    lags: int
    weights: dict[int, np.ndarray]  # horizon -> [lags * features + 1] ridge weights

    def log_ratios(self, scaled: np.ndarray, ends: np.ndarray) -> dict[int, np.ndarray]:
        """Predicted log(close[t+h] / close[t]) for each end index, from scaled feature rows."""
        rows = with_bias(flat_rows(scaled, np.asarray(ends, np.int64), self.lags))
        return {h: rows @ w for h, w in self.weights.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"lags": self.lags, "weights": {str(h): w.tolist() for h, w in self.weights.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HorizonHeads:
        return cls(int(data["lags"]), {int(h): np.asarray(w, np.float64) for h, w in data["weights"].items()})


def fit_horizon_heads(samples: SampleSet, scaled: np.ndarray, train_ends: np.ndarray, val_ends: np.ndarray,
                      horizons: tuple[int, ...] = HORIZONS, lags: int = LAGS) -> HorizonHeads | None:
    """One ridge head per horizon; None when the training part is too short for them."""
    lags = min(lags, samples.window)
    log_close = np.log(samples.close)
    weights = {}
    for h in horizons:
        train = reachable(samples.open_times, train_ends, h, samples.interval_ms)
        val = reachable(samples.open_times, val_ends, h, samples.interval_ms)
        if len(train) < 100:
            return None
        x_train, y_train = flat_rows(scaled, train, lags), log_close[train + h] - log_close[train]
        alphas = ALPHAS if len(val) else ALPHAS[:1]
        x_val, y_val = with_bias(flat_rows(scaled, val, lags)), log_close[val + h] - log_close[val]
        best: tuple[float, np.ndarray] | None = None
        for w in ridge_path(x_train, y_train[:, None], alphas):
            loss = float(np.mean(np.abs(x_val @ w[:, 0] - y_val))) if len(val) else 0.0
            if best is None or loss < best[0]:
                best = (loss, w[:, 0])
        assert best is not None
        weights[h] = best[1]
    return HorizonHeads(lags, weights)
