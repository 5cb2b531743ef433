"""From candles to supervised samples: windows, log-ratio targets, a leak-free temporal split.

A sample is identified by its *end index* e: the position of the last candle the model sees.
Its input is the feature rows e-W+1 .. e (which read candles back to e-W+1-LOOKBACK), its
targets describe candle e+1 relative to the close of candle e. Targets are log ratios, so the
network works in a price-free space and prices are rebuilt by multiplying the last close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from shared.model.features import FEATURE_VERSION, FEATURES, LOOKBACK, compute_features

#: Regression targets, each log(price of candle e+1 / close of candle e).
TARGETS: tuple[str, ...] = ("open", "high", "low", "close")
CLOSE = TARGETS.index("close")
#: Scaled inputs are clipped to +-CLIP standard deviations: a flash crash is an outlier, not a
#: reason to saturate every LSTM gate for the next hour.
CLIP = 8.0


@dataclass(frozen=True)
class Scaler:
    """Per-column standardisation whose statistics come from training rows only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, constant_std: float = 1.0) -> Scaler:
        """Statistics of `values`; a constant column gets `constant_std` instead of a zero std.

        For inputs 1.0 keeps a constant column at 0. For targets a tiny value is used instead:
        a constant target (say, open == last close) must be rebuilt as that constant whatever
        the network outputs for it.
        """
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
        std = np.where(std > 1e-12, std, constant_std)
        return cls(mean=mean.astype(np.float64), std=std.astype(np.float64))

    def transform(self, values: np.ndarray) -> np.ndarray:
        result: np.ndarray = (values - self.mean) / self.std
        return result

    def inverse(self, values: np.ndarray) -> np.ndarray:
        result: np.ndarray = values * self.std + self.mean
        return result

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        return cls(mean=np.asarray(data["mean"], np.float64), std=np.asarray(data["std"], np.float64))


@dataclass(frozen=True)
class Preprocessing:
    """Everything besides the weights that inference needs; saved beside the model."""

    window: int
    interval_ms: int
    feature_scaler: Scaler
    target_scaler: Scaler
    #: Share of training rows whose next candle closed above its open (the climatology).
    up_rate: float
    #: Factor on the predicted close log ratio, fitted on the validation part (1 = as the network
    #: says, 0 = persistence). See `training.fit_close_shrink`.
    close_shrink: float = 1.0
    #: Factor pulling p_up toward 0.5 (p' = 0.5 + f (p - 0.5)), fitted on the validation part.
    p_up_shrink: float = 1.0
    features: tuple[str, ...] = FEATURES
    feature_version: int = FEATURE_VERSION
    lookback: int = LOOKBACK
    clip: float = CLIP
    #: Conformal score quantiles fitted on the validation part (`shared.model.intervals.Conformal`).
    conformal: dict[str, Any] | None = None
    #: Direct heads for the close h candles ahead (`shared.model.horizons.HorizonHeads`).
    horizons: dict[str, Any] | None = None

    @property
    def history_needed(self) -> int:
        return self.window + self.lookback

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "interval_ms": self.interval_ms,
            "features": list(self.features),
            "feature_version": self.feature_version,
            "lookback": self.lookback,
            "clip": self.clip,
            "targets": list(TARGETS),
            "feature_scaler": self.feature_scaler.to_dict(),
            "target_scaler": self.target_scaler.to_dict(),
            "up_rate": self.up_rate,
            "close_shrink": self.close_shrink,
            "p_up_shrink": self.p_up_shrink,
            "conformal": self.conformal,
            "horizons": self.horizons,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            window=int(data["window"]),
            interval_ms=int(data["interval_ms"]),
            feature_scaler=Scaler.from_dict(data["feature_scaler"]),
            target_scaler=Scaler.from_dict(data["target_scaler"]),
            up_rate=float(data["up_rate"]),
            close_shrink=float(data.get("close_shrink", 1.0)),
            p_up_shrink=float(data.get("p_up_shrink", 1.0)),
            features=tuple(data["features"]),
            feature_version=int(data["feature_version"]),
            lookback=int(data["lookback"]),
            clip=float(data["clip"]),
            conformal=data.get("conformal"),
            horizons=data.get("horizons"),
        )

    def log_ratios(self, network_outputs: np.ndarray) -> np.ndarray:
        """Network regression outputs -> log(price / last close) per target, shrink applied."""
        ratios = self.target_scaler.inverse(network_outputs)
        ratios[:, CLOSE] *= self.close_shrink
        return ratios

    def calibrate(self, p_up: np.ndarray) -> np.ndarray:
        """Network p_up -> reported p_up, pulled toward 0.5 by the fitted factor."""
        result: np.ndarray = 0.5 + self.p_up_shrink * (p_up - 0.5)
        return result

    def scale_features(self, features: np.ndarray) -> np.ndarray:
        scaled = self.feature_scaler.transform(features)
        clipped: np.ndarray = np.clip(scaled, -self.clip, self.clip)
        return clipped


def compute_targets(candles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(targets[n, 4], up[n]) for every row; the last row has no next candle and gets NaN."""
    c = candles["close"].to_numpy(np.float64)
    n = len(c)
    targets = np.full((n, len(TARGETS)), np.nan)
    up = np.full(n, np.nan)
    if n > 1:
        base = c[:-1]
        for j, name in enumerate(TARGETS):
            targets[:-1, j] = np.log(candles[name].to_numpy(np.float64)[1:] / base)
        up[:-1] = (c[1:] > candles["open"].to_numpy(np.float64)[1:]).astype(np.float64)
    return targets, up


def infer_interval_ms(open_times: np.ndarray) -> int:
    """The candle spacing: the most common step between consecutive open times."""
    if len(open_times) < 2:
        raise ValueError("need at least two candles to infer the interval")
    steps, counts = np.unique(np.diff(open_times), return_counts=True)
    return int(steps[np.argmax(counts)])


def valid_end_indices(open_times: np.ndarray, interval_ms: int, window: int, with_target: bool) -> np.ndarray:
    """End indices whose whole history (and next candle, if `with_target`) has no gap.

    A window spanning a missing candle would pair two unrelated moments as if consecutive.
    """
    n = len(open_times)
    first = window - 1 + LOOKBACK
    last = n - 2 if with_target else n - 1
    if last < first:
        return np.zeros(0, dtype=np.int64)
    breaks = np.concatenate([[0], (np.diff(open_times) != interval_ms).astype(np.int64)])
    cum = np.cumsum(breaks)  # cum[i] = breaks between row 0 and row i
    ends = np.arange(first, last + 1)
    span_end = ends + 1 if with_target else ends
    span_start = ends - first
    ok = cum[span_end] - cum[span_start] == 0
    result: np.ndarray = ends[ok]
    return result


@dataclass
class SampleSet:
    """Features, targets and times of a candle frame, with the end indices usable as samples."""

    features: np.ndarray
    targets: np.ndarray
    up: np.ndarray
    open_times: np.ndarray
    close: np.ndarray
    end_indices: np.ndarray
    interval_ms: int
    window: int

    #: The names of the feature columns (`shared.model.features.FEATURE_SETS`).
    feature_names: tuple[str, ...] = FEATURES

    @classmethod
    def build(
        cls, candles: pd.DataFrame, window: int, interval_ms: int | None = None, features: tuple[str, ...] = FEATURES
    ) -> SampleSet:
        open_times = candles["open_time"].to_numpy(np.int64)
        if np.any(np.diff(open_times) <= 0):
            raise ValueError("candles must be sorted by open_time without duplicates")
        interval = interval_ms or infer_interval_ms(open_times)
        targets, up = compute_targets(candles)
        return cls(
            features=compute_features(candles, features),
            targets=targets,
            up=up,
            open_times=open_times,
            close=candles["close"].to_numpy(np.float64),
            end_indices=valid_end_indices(open_times, interval, window, with_target=True),
            interval_ms=interval,
            window=window,
            feature_names=features,
        )

    def fit_preprocessing(self, train_ends: np.ndarray) -> Preprocessing:
        """Scalers and climatology from the rows the training samples read, and nothing later."""
        if len(train_ends) == 0:
            raise ValueError("no training samples")
        read = np.zeros(len(self.features), bool)  # a mask, not np.unique: 0.1 s of a 1.6 s training
        for back in range(self.window):
            read[train_ends - back] = True
        rows = np.flatnonzero(read)
        return Preprocessing(
            window=self.window,
            interval_ms=self.interval_ms,
            feature_scaler=Scaler.fit(self.features[rows]),
            target_scaler=Scaler.fit(self.targets[train_ends], constant_std=1e-12),
            up_rate=float(np.mean(self.up[train_ends])),
            features=self.feature_names,
        )


def make_windows(scaled_features: np.ndarray, end_indices: np.ndarray, window: int) -> np.ndarray:
    """Input tensor [samples, window, features] (float32) for the given end indices."""
    if len(end_indices) == 0:
        return np.zeros((0, window, scaled_features.shape[1]), np.float32)
    view = sliding_window_view(scaled_features, window, axis=0)  # [n - W + 1, F, W]
    windows = view[np.asarray(end_indices) - window + 1]
    return np.ascontiguousarray(windows.transpose(0, 2, 1), dtype=np.float32)


@dataclass(frozen=True)
class Split:
    """End indices of each part, in time order; parts never share a candle."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    gap: int = field(default=0)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def sample_gap(window: int) -> int:
    """Minimum distance between end indices of two parts for them to share no candle.

    A sample reads candles e-W+1-LOOKBACK .. e+1, so the next part must start at
    e + W + LOOKBACK + 1 or later; that is more than the window, as the split requires.
    """
    return window + LOOKBACK + 1


def temporal_split(
    end_indices: np.ndarray,
    window: int,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    test_rows: int | None = None,
) -> Split:
    """Cut time-ordered samples into train / validation / test, never shuffling across a cut.

    `test_rows`, when given, makes the test part the last `test_rows` samples and splits the
    rest by the ratio of the first two fractions. Samples of a part closer than
    `sample_gap(window)` to the next part are dropped, so no candle (input or target) is shared.
    """
    ends = np.asarray(end_indices)
    n = len(ends)
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"bad split fractions {fractions}")
    if test_rows is not None:
        n_test = min(max(test_rows, 0), n)
        rest = n - n_test
        n_train = round(rest * fractions[0] / (fractions[0] + fractions[1]))
        n_val = rest - n_train
    else:
        total = sum(fractions)
        n_train = round(n * fractions[0] / total)
        n_val = round(n * fractions[1] / total) if fractions[2] > 0 else n - n_train
        n_test = n - n_train - n_val
    gap = sample_gap(window)
    train = ends[:n_train]
    validation = ends[n_train : n_train + n_val]
    test = ends[n_train + n_val : n_train + n_val + n_test]
    # The gap is taken from the end of the earlier part, so the test part is exactly the newest
    # rows asked for (e.g. "the last 45 days") and starts where the caller expects.
    if len(validation) and len(test):
        validation = validation[validation <= test[0] - gap]
    following = validation if len(validation) else test
    if len(train) and len(following):
        train = train[train <= following[0] - gap]
    return Split(train=train, validation=validation, test=test, gap=gap)
