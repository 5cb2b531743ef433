"""One interface for every model kind, and the registry the loader dispatches on.

A model kind is a fit function (`shared.model.training.Fitter`: samples and their split by time
in, the fitted model out; `shared.model.training.train` does the rest alike for every kind) and a
class that satisfies `Forecaster`: it predicts one window or many
(`predict_next`, `predict_many`, `forecast`), says how much history it needs, writes its own
files into a version folder and reads them back (`save_files`, `load_files`). Everything around
it (the version folder, checksums, the feature-set check, the champion cache, the predictor, the
gateway) is the same for every kind; `metadata.json` records the `kind`, and `load_model` builds
the class named there. A new kind is one new module and one entry in `KINDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from shared.model.dataset import Preprocessing, valid_end_indices
from shared.model.features import compute_features
from shared.model.forecast import Forecast, NextCandle, next_candles
from shared.model.horizons import HorizonHeads
from shared.model.intervals import LEVELS, Conformal, label, predicted_scale
from shared.model.intervals import TARGETS as INTERVAL_TARGETS

if TYPE_CHECKING:
    from shared.model.training import Fitter

@dataclass(frozen=True)
class Kind:
    """Where a kind lives: "module:name" of its `Forecaster` class and of its fit function
    (`shared.model.training.Fitter`: samples and the split in, the fitted model out)."""

    forecaster: str
    fitter: str


#: Nominal interval level -> the level asked of the calibration (see `ForecasterBase.forecast`): one
#: for every row, or an array of one per row (`shared.model.stacked`: several streams in one batch).
Levels = Mapping[float, float | np.ndarray]

#: Artifacts saved before kinds existed are LSTMs.
KINDS: dict[str, Kind] = {
    "lstm": Kind(forecaster="shared.model.inference:LoadedModel", fitter="shared.model.training:fit_network"),
    "gbm": Kind(forecaster="shared.model.gbm:GbmForecaster", fitter="shared.model.gbm:fit_gbm"),
    "linear": Kind(forecaster="shared.model.linear:LinearForecaster", fitter="shared.model.linear:fit_linear"),
}
DEFAULT_KIND = "lstm"


@runtime_checkable
class Forecaster(Protocol):
    """A trained next-candle model of any kind."""

    preprocessing: Preprocessing
    metadata: dict[str, Any]
    path: Path | None

    @property
    def kind(self) -> str:
        """The name in `KINDS`, written to `metadata.json`."""
        ...

    @property
    def version(self) -> str: ...

    @property
    def window(self) -> int: ...

    @property
    def history_needed(self) -> int:
        """Candles needed before the last one to predict the next (window plus feature lookback)."""
        ...

    @property
    def interval_ms(self) -> int: ...

    def forecast(
        self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray, levels: Levels | None = None
    ) -> Forecast:
        """Predicted candles e+1 for each end index e (arrays, for evaluation), with intervals."""
        ...

    def predict_many(
        self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray, levels: Levels | None = None
    ) -> list[NextCandle]:
        """The candle after each end index: the batch path."""
        ...

    def predict_next(self, candles: pd.DataFrame) -> NextCandle:
        """The candle after the last row: the single-window path."""
        ...

    def inputs(self, candles: pd.DataFrame, end_indices: np.ndarray) -> np.ndarray:
        """The model's inputs for the end indices, features on the last axis (windows or flat rows)."""
        ...

    def forecast_horizons(
        self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray
    ) -> dict[int, np.ndarray]:
        """The close h candles after each end index, by the direct heads (h > 1)."""
        ...

    def raw_outputs(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scaled regression outputs [n, 4], raw p_up [n])."""
        ...

    def save_files(self, folder: Path) -> tuple[str, ...]:
        """Write the kind's own files (beside `preprocessing.json` and `metadata.json`); returns their names."""
        ...


class ForecasterBase:
    """The prediction half every kind shares: check the history, build the kind's `inputs`, run its
    `raw_outputs`, turn scaled log ratios back into prices (p_up is clamped once, in `Forecast`)."""

    preprocessing: Preprocessing
    metadata: dict[str, Any]
    path: Path | None

    def inputs(self, candles: pd.DataFrame, end_indices: np.ndarray) -> np.ndarray:
        """The kind's model inputs for the given end indices (positions in `candles`, checked)."""
        raise NotImplementedError

    def raw_outputs(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scaled regression outputs [n, 4], raw p_up [n]) for the kind's inputs."""
        raise NotImplementedError

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unsaved"))

    @property
    def window(self) -> int:
        return self.preprocessing.window

    @property
    def history_needed(self) -> int:
        """Candles `predict_next` needs: the window plus the features' lookback."""
        return self.preprocessing.history_needed

    @property
    def interval_ms(self) -> int:
        return self.preprocessing.interval_ms

    def check_ends(self, candles: pd.DataFrame, ends: np.ndarray) -> tuple[int, int]:
        """The rows [lo, hi) the end indices read; a clear error for a short or gapped history."""
        if len(ends) == 0:
            return 0, 0
        if ends.min() < self.history_needed - 1 or ends.max() >= len(candles):
            raise ValueError(
                f"end indices must lie in [{self.history_needed - 1}, {len(candles) - 1}]: the model needs "
                f"{self.history_needed} candles of history (window {self.window} + lookback)"
            )
        lo = int(ends.min()) - self.history_needed + 1
        hi = int(ends.max()) + 1
        times = candles["open_time"].to_numpy(np.int64)[lo:hi]
        ok = valid_end_indices(times, self.interval_ms, self.window, with_target=False) + lo
        bad = np.setdiff1d(ends, ok)
        if len(bad):
            raise ValueError(
                f"the history of end index {int(bad[0])} has a gap (candles not {self.interval_ms} ms apart); "
                "fill or drop the gap before predicting"
            )
        return lo, hi

    def forecast(
        self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray, levels: Levels | None = None
    ) -> Forecast:
        """Predicted candles e+1 for each end index e (positions in `candles`).

        `levels` maps a nominal interval level to the level asked of the calibration (adaptive
        conformal moves it live); by default each of `LEVELS` as it is.
        """
        ends = np.asarray(end_indices, dtype=np.int64)
        reg, p_up = self.raw_outputs(self.inputs(candles, ends))
        close = candles["close"].to_numpy(np.float64)
        forecast = Forecast.from_log_ratios(
            close[ends], self.preprocessing.log_ratios(reg), self.preprocessing.calibrate(p_up)
        )
        conformal = self.conformal
        if conformal is not None and len(ends):
            sigma = predicted_scale(forecast.high, forecast.low)
            asked = {level: level for level in LEVELS} | dict(levels or {})
            for target in INTERVAL_TARGETS:
                for nominal, level in asked.items():
                    forecast.bounds[label(target, nominal)] = conformal.bounds(target, level,
                                                                              getattr(forecast, target), sigma)
        return forecast

    def forecast_horizons(
        self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray
    ) -> dict[int, np.ndarray]:
        """The close h candles after each end index, by each direct head (empty without heads)."""
        if self.preprocessing.horizons is None:
            return {}
        ends = np.asarray(end_indices, dtype=np.int64)
        lo, hi = self.check_ends(candles, ends)
        if len(ends) == 0:
            return {}
        heads = HorizonHeads.from_dict(self.preprocessing.horizons)
        scaled = self.preprocessing.scale_features(compute_features(candles.iloc[lo:hi], self.preprocessing.features))
        base = candles["close"].to_numpy(np.float64)[ends]
        return {h: base * np.exp(r) for h, r in heads.log_ratios(scaled, ends - lo).items()}

    @property
    def conformal(self) -> Conformal | None:
        """The calibrated intervals' quantiles (None for a model saved before intervals existed)."""
        data = self.preprocessing.conformal
        if data is None:
            return None
        cached: tuple[int, Conformal] | None = self.__dict__.get("_conformal")
        if cached is None or cached[0] != id(data):
            cached = (id(data), Conformal.from_dict(data))
            self.__dict__["_conformal"] = cached
        return cached[1]

    def predict_many(
        self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray, levels: Levels | None = None
    ) -> list[NextCandle]:
        """Batch path for backlogs: the candle after each end index (position of a base candle)."""
        ends = np.asarray(end_indices, dtype=np.int64)
        forecast = self.forecast(candles, ends, levels)
        base_times = candles["open_time"].to_numpy(np.int64)[ends]
        base_close = candles["close"].to_numpy(np.float64)[ends]
        return next_candles(forecast, base_times, base_close, self.interval_ms)

    def predict_next(self, candles: pd.DataFrame) -> NextCandle:
        """The candle after the last row of `candles` (time-ordered, >= `history_needed` rows)."""
        if len(candles) < self.history_needed:
            raise ValueError(
                f"need {self.history_needed} candles (window {self.window} + feature lookback), got {len(candles)}"
            )
        tail = candles.iloc[-self.history_needed :]
        return self.predict_many(tail, [len(tail) - 1])[0]


def _resolve(kind: str, part: str) -> Any:
    try:
        target: str = getattr(KINDS[kind], part)
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(sorted(KINDS))}") from None
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


def fitter_of(kind: str) -> Fitter:
    """The fit function of a model kind (`shared.model.training.train` runs it)."""
    fitter: Fitter = _resolve(kind, "fitter")
    return fitter


def load_files(kind: str, folder: Path, preprocessing: Preprocessing, metadata: dict[str, Any]) -> Forecaster:
    """Build a model of `kind` from its files in `folder` (checksums already verified)."""
    model: Forecaster = _resolve(kind, "forecaster").load_files(folder, preprocessing, metadata)
    return model
