"""What the tabular kinds (`gbm`, `linear`) share: one flat row of inputs per sample.

The LSTM reads a window of `window` rows of the 17 scaled features; a tabular model reads the
last `lags` of those rows side by side (17 × lags columns). Same features, same scalers fitted
on the training rows only, same samples (end indices) and the same temporal split as the LSTM,
so every kind is judged on the same rows; the targets are the same scaled log ratios, and
`p_up` the same up/down label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.model.dataset import CLOSE, Preprocessing, SampleSet
from shared.model.features import compute_features
from shared.model.forecaster import ForecasterBase
from shared.model.linear_algebra import flat_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TabularData:
    """The inputs and targets of one training run, split by time (`samples` built by the trainer)."""

    preprocessing: Preprocessing
    x_train: np.ndarray
    y_train: np.ndarray  # scaled log ratios, TARGETS order
    up_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    up_val: np.ndarray
    close_val: np.ndarray  # unscaled close log ratios of the validation samples

    @classmethod
    def build(cls, samples: SampleSet, train_ends: np.ndarray, val_ends: np.ndarray, lags: int) -> TabularData:
        if lags < 1 or lags > samples.window:
            raise ValueError(f"lags must be in [1, window={samples.window}], got {lags}")
        preprocessing = samples.fit_preprocessing(train_ends)
        scaled = preprocessing.scale_features(samples.features)
        scaler = preprocessing.target_scaler
        return cls(
            preprocessing=preprocessing,
            x_train=flat_rows(scaled, train_ends, lags),
            y_train=scaler.transform(samples.targets[train_ends]),
            up_train=samples.up[train_ends],
            x_val=flat_rows(scaled, val_ends, lags),
            y_val=scaler.transform(samples.targets[val_ends]) if len(val_ends) else np.zeros((0, 4)),
            up_val=samples.up[val_ends],
            close_val=samples.targets[val_ends, CLOSE],
        )


class TabularForecaster(ForecasterBase):
    """The prediction side of a tabular kind: flat rows in; the kind supplies `raw_outputs` and files."""

    lags: int

    def inputs(self, candles: pd.DataFrame, end_indices: np.ndarray) -> np.ndarray:
        ends = np.asarray(end_indices, dtype=np.int64)
        lo, hi = self.check_ends(candles, ends)
        if len(ends) == 0:
            return np.zeros((0, self.lags * len(self.preprocessing.features)))
        scaled = self.preprocessing.scale_features(compute_features(candles.iloc[lo:hi], self.preprocessing.features))
        return flat_rows(scaled, ends - lo, self.lags)
