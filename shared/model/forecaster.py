"""One interface for every model kind, and the registry the loader dispatches on.

A model kind is a training function (`fit`: candles and a config in, a `TrainResult` with its
test evaluation out) and a class that satisfies `Forecaster`: it predicts one window or many
(`predict_next`, `predict_many`, `forecast`), says how much history it needs, writes its own
files into a version folder and reads them back (`save_files`, `load_files`). Everything around
it (the version folder, checksums, the feature-set check, the champion cache, the predictor, the
gateway) is the same for every kind; `metadata.json` records the `kind`, and `load_model` builds
the class named there. A new kind is one new module and one entry in `KINDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from shared.model.dataset import Preprocessing
from shared.model.forecast import Forecast, NextCandle

if TYPE_CHECKING:
    import threading

    from shared.model.training import Progress, TrainConfig, TrainResult

@dataclass(frozen=True)
class Kind:
    """Where a kind lives: "module:name" of its `Forecaster` class and of its training function."""

    forecaster: str
    fit: str


#: Artifacts saved before kinds existed are LSTMs.
KINDS: dict[str, Kind] = {
    "lstm": Kind(forecaster="shared.model.inference:LoadedModel", fit="shared.model.training:train_model"),
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

    def forecast(self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray) -> Forecast:
        """Predicted candles e+1 for each end index e (arrays, for evaluation)."""
        ...

    def predict_many(self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray) -> list[NextCandle]:
        """The candle after each end index: the batch path."""
        ...

    def predict_next(self, candles: pd.DataFrame) -> NextCandle:
        """The candle after the last row: the single-window path."""
        ...

    def save_files(self, folder: Path) -> tuple[str, ...]:
        """Write the kind's own files (beside `preprocessing.json` and `metadata.json`); returns their names."""
        ...


def _resolve(kind: str, part: str) -> Any:
    try:
        target: str = getattr(KINDS[kind], part)
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(sorted(KINDS))}") from None
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


def fit(
    kind: str,
    candles: pd.DataFrame,
    config: TrainConfig,
    progress: Progress | None = None,
    *,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train a model of `kind` on `candles` (split by time inside; nothing is fitted on the test part)."""
    result: TrainResult = _resolve(kind, "fit")(candles, config, progress, cancel=cancel)
    return result


def load_files(kind: str, folder: Path, preprocessing: Preprocessing, metadata: dict[str, Any]) -> Forecaster:
    """Build a model of `kind` from its files in `folder` (checksums already verified)."""
    model: Forecaster = _resolve(kind, "forecaster").load_files(folder, preprocessing, metadata)
    return model
