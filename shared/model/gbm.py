"""The `gbm` kind: LightGBM, one booster per target (open, high, low, close log ratios) and a
classifier for `p_up`, on the tabular rows of `shared.model.tabular`.

Why LightGBM rather than a hand-written booster: histogram-based training on ~18,000 rows of
68 columns takes about a second on one core, it stops early on the validation part natively,
and its text model format is stable across versions. Each booster stops on its own validation
loss (the validation part, never the test part); the close shrink and the `p_up` calibration are
fitted on the validation outputs, as for the LSTM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from shared.model.dataset import TARGETS, Preprocessing, SampleSet
from shared.model.tabular import TabularData, TabularForecaster
from shared.model.training import (
    FitResult,
    Progress,
    TrainConfig,
    TrainingCancelled,
    calibrate_on_validation,
)

UP_FILE = "gbm_up.txt"


def _target_file(name: str) -> str:
    return f"gbm_{name}.txt"


@dataclass
class GbmForecaster(TabularForecaster):
    preprocessing: Preprocessing
    lags: int
    regressors: list[lgb.Booster]  # TARGETS order
    classifier: lgb.Booster
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def kind(self) -> str:
        return "gbm"

    def raw_outputs(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(inputs) == 0:
            return np.zeros((0, len(TARGETS))), np.zeros(0)
        # One thread: a live candle is one row, where thread start-up costs more than the trees.
        threads = 1 if len(inputs) < 256 else 0
        reg = np.column_stack([b.predict(inputs, num_threads=threads) for b in self.regressors])
        p_up = np.asarray(self.classifier.predict(inputs, num_threads=threads), np.float64)
        return reg, p_up

    def save_files(self, folder: Path) -> tuple[str, ...]:
        names = []
        for name, booster in zip(TARGETS, self.regressors, strict=True):
            booster.save_model(str(folder / _target_file(name)))
            names.append(_target_file(name))
        self.classifier.save_model(str(folder / UP_FILE))
        return (*names, UP_FILE)

    @classmethod
    def load_files(cls, folder: Path, preprocessing: Preprocessing, metadata: dict[str, Any]) -> GbmForecaster:
        regressors = [lgb.Booster(model_file=str(folder / _target_file(name))) for name in TARGETS]
        classifier = lgb.Booster(model_file=str(folder / UP_FILE))
        return cls(preprocessing=preprocessing, lags=int(metadata["lags"]), regressors=regressors,
                   classifier=classifier, metadata=metadata, path=folder)


def _params(config: TrainConfig, objective: str) -> dict[str, Any]:
    return {
        "objective": objective,
        "learning_rate": config.gbm_learning_rate,
        "num_leaves": config.gbm_leaves,
        "min_data_in_leaf": config.gbm_min_data_in_leaf,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": config.seed,
        "deterministic": True,
        "num_threads": 2,
        "verbosity": -1,
    }


def _boost(config: TrainConfig, objective: str, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
           y_val: np.ndarray) -> lgb.Booster:
    train = lgb.Dataset(x, y, free_raw_data=False)
    callbacks: list[Callable[..., Any]] = []
    valid_sets = []
    if len(x_val):
        valid_sets = [lgb.Dataset(x_val, y_val, reference=train)]
        callbacks.append(lgb.early_stopping(config.gbm_early_stopping, verbose=False))
    return lgb.train(_params(config, objective), train, num_boost_round=config.gbm_rounds, valid_sets=valid_sets,
                     callbacks=callbacks)


def fit_gbm(
    samples: SampleSet,
    train_ends: np.ndarray,
    val_ends: np.ndarray,
    config: TrainConfig,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> FitResult:
    data = TabularData.build(samples, train_ends, val_ends, config.lags)
    regressors = []
    steps = len(TARGETS) + 1
    for j in range(len(TARGETS)):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("training was cancelled")
        # Huber: the log ratios have heavy tails (a wick of 3% among moves of 0.1%).
        regressors.append(_boost(config, "huber", data.x_train, data.y_train[:, j], data.x_val, data.y_val[:, j]))
        if progress is not None:
            progress(j + 1, steps)
    classifier = _boost(config, "binary", data.x_train, data.up_train, data.x_val, data.up_val)
    if progress is not None:
        progress(steps, steps)
    rounds = [int(b.best_iteration or b.current_iteration()) for b in (*regressors, classifier)]
    model = GbmForecaster(preprocessing=data.preprocessing, lags=config.lags, regressors=regressors,
                          classifier=classifier,
                          metadata={"config": config.to_dict(), "lags": config.lags, "rounds": rounds})
    if len(val_ends):
        calibrate_on_validation(model, model.raw_outputs(data.x_val), data.up_val, data.close_val, config)
    return FitResult(model, [], max(rounds))

