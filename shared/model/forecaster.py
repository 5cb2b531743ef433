"""One interface for every model kind, and the registry the loader dispatches on.

A model kind is one module with one class that satisfies `Forecaster`: it trains (`fit`), predicts
one window or many (`predict_next`, `predict_many`, `forecast`), says how much history it needs,
writes its own files into a version folder and reads them back. Everything around it (the
version folder, checksums, the feature-set check, the champion cache, the predictor, the
gateway) is the same for every kind; `metadata.json` records the `kind`, and `load_model`
builds the class named there. A new kind is one new module and one line in `KINDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from shared.model.dataset import Preprocessing
from shared.model.forecast import Forecast, NextCandle

if TYPE_CHECKING:
    from shared.model.training import Progress, TrainConfig, TrainResult

#: kind -> "module:Class". Artifacts saved before kinds existed are LSTMs.
KINDS: dict[str, str] = {
    "lstm": "shared.model.inference:LoadedModel",
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


def forecaster_class(kind: str) -> Any:
    """The class of a model kind; a clear error naming the known kinds otherwise."""
    try:
        target = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(sorted(KINDS))}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def fit(kind: str, candles: pd.DataFrame, config: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train a model of `kind` on `candles` (split by time inside; nothing is fitted on the test part)."""
    result: TrainResult = forecaster_class(kind).fit(candles, config, progress)
    return result


def load_files(kind: str, folder: Path, preprocessing: Preprocessing, metadata: dict[str, Any]) -> Forecaster:
    """Build a model of `kind` from its files in `folder` (checksums already verified)."""
    model: Forecaster = forecaster_class(kind).load_files(folder, preprocessing, metadata)
    return model
