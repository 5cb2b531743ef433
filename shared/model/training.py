"""Training: split in time, fit scalers on train rows, fit the network, evaluate on the test part.

`train_model` is what the trainer service, the CLI and the backtest call. It blocks (run it in
a thread from async code), reports epochs through `progress(done, total)` and stops early on a
regression metric of the validation part, never on the classification loss: at 5 minutes that
loss barely moves from log(2), and letting it choose the epoch would select noise.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from shared.model._tf import keras_module
from shared.model.dataset import CLOSE, Preprocessing, SampleSet, make_windows, temporal_split
from shared.model.evaluation import Evaluation, evaluate
from shared.model.features import FEATURE_SETS
from shared.model.forecaster import Forecaster, fitter_of
from shared.model.horizons import fit_horizon_heads
from shared.model.importance import permutation_importance
from shared.model.inference import LoadedModel
from shared.model.intervals import TARGETS as INTERVAL_TARGETS
from shared.model.intervals import fit_conformal, predicted_scale
from shared.model.metrics import log_loss
from shared.model.network import (
    CLASSIFICATION_HEAD,
    REGRESSION_HEAD,
    NetworkSpec,
    build_network,
    combine_members,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
MIN_TRAIN_SAMPLES = 32


class TrainingCancelled(RuntimeError):
    """The caller's `cancel` event was set; no model was produced."""


@dataclass(frozen=True)
class TrainConfig:
    """Every choice of a training run; recorded in the artifact so a model can be reproduced."""

    window: int = 60
    layers: int = 1
    units: int = 32
    dropout: float = 0.0
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    patience: int = 4
    #: Weight of the classification loss; the regression head's Huber loss has weight 1.
    cls_weight: float = 0.3
    huber_delta: float = 1.0
    #: Train / validation / test fractions of the samples, in time order.
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)
    #: If set, the test part is the last `test_rows` samples (the rest split by `split`'s ratio).
    test_rows: int | None = None
    #: Early-stopping metric on validation: "close" = MAE of the close log ratio, "all" = mean
    #: scaled MAE of the four regression targets. Both are regression-head metrics.
    monitor: Literal["close", "all"] = "all"
    #: Fit a factor in [0, 1] on the close forecast on the validation part (see `fit_close_shrink`).
    shrink_close: bool = True
    #: Fit a factor in [0, 1] pulling p_up toward 0.5 on the validation part (`fit_p_up_shrink`).
    calibrate_p_up: bool = True
    #: Networks trained from seeds seed, seed+1, ... and averaged (one `.keras` file).
    ensemble: int = 1
    seed: int = 42
    #: Candle spacing; inferred from the data when None.
    interval_ms: int | None = None
    # The tabular kinds (`gbm`, `linear`): rows of the last `lags` candles' features, side by side.
    lags: int = 4
    gbm_rounds: int = 400
    gbm_leaves: int = 15
    gbm_learning_rate: float = 0.05
    gbm_min_data_in_leaf: int = 200
    gbm_early_stopping: int = 30
    #: Ridge penalties tried on the validation part (the one with the lowest validation loss wins).
    ridge_alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)
    #: Feature set (`shared.model.features.FEATURE_SETS`): "full", or "ohlc" for the variant that
    #: answers histories without Binance's volume and trade fields.
    features: str = "full"

    def __post_init__(self) -> None:
        if self.ensemble < 1 or self.window < 2 or self.epochs < 1:
            raise ValueError("ensemble and epochs must be >= 1 and window >= 2")
        if self.features not in FEATURE_SETS:
            raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, not {self.features!r}")

    def network_spec(self, n_features: int) -> NetworkSpec:
        return NetworkSpec(
            window=self.window,
            n_features=n_features,
            layers=self.layers,
            units=self.units,
            dropout=self.dropout,
            learning_rate=self.learning_rate,
            huber_delta=self.huber_delta,
            cls_weight=self.cls_weight,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("split", "ridge_alphas"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known)


@dataclass
class TrainResult:
    """A trained model with its test evaluation; `artifacts.save_model` turns it into a folder."""

    model: Forecaster
    #: The model's metrics on the test part (empty if there was no test part).
    metrics: dict[str, float]
    #: Baseline name -> metrics on exactly the same test rows.
    baseline_metrics: dict[str, dict[str, float]]
    #: Open time (epoch ms) of the first predicted candle of the test part, None without one.
    test_start: int | None
    #: Open times of the first and last candles used (train through test).
    data_start: int
    data_end: int
    config: TrainConfig
    evaluation: Evaluation | None = None
    alarms: list[str] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    split_sizes: dict[str, int] = field(default_factory=dict)
    train_seconds: float = 0.0
    #: Open time of the last predicted candle of the training and validation parts (the series'
    #: split labels); validation's is training's when there is no validation part.
    train_until: int | None = None
    validation_until: int | None = None


@dataclass
class _MonitorState:
    config: TrainConfig
    x_val: np.ndarray
    y_val: np.ndarray  # unscaled log ratios
    preprocessing: Preprocessing
    progress: Progress | None
    cancel: threading.Event | None
    best: float = math.inf
    best_epoch: int = 0
    best_weights: list[Any] | None = None
    waited: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def validation_score(self, model: Any) -> dict[str, float]:
        if len(self.x_val) == 0:
            return {}
        out = model.predict(self.x_val, batch_size=2048, verbose=0)
        predicted = self.preprocessing.target_scaler.inverse(np.asarray(out[REGRESSION_HEAD], np.float64))
        errors = np.abs(predicted - self.y_val)
        close_mae = float(errors[:, CLOSE].mean())
        scaled = float((errors / self.preprocessing.target_scaler.std).mean())
        persistence = float(np.abs(self.y_val[:, CLOSE]).mean())
        return {
            "val_close_mae": close_mae,
            "val_scaled_mae": scaled,
            "val_close_skill": 1 - close_mae / persistence if persistence > 0 else math.nan,
        }

    def epoch_end(self, model: Any, epoch: int, logs: dict[str, float]) -> None:
        row = {k: float(v) for k, v in logs.items()}
        row.update(self.validation_score(model))
        row["epoch"] = epoch + 1
        row["seconds"] = time.perf_counter() - self.started
        self.history.append(row)
        key = "val_close_mae" if self.config.monitor == "close" else "val_scaled_mae"
        score = row.get(key, -epoch)  # no validation part: the last epoch is the best
        if score < self.best:
            self.best, self.best_epoch, self.waited = score, epoch + 1, 0
            self.best_weights = model.get_weights()
        else:
            self.waited += 1
            if self.waited >= self.config.patience:
                model.stop_training = True
        log.debug("epoch %d: %s", epoch + 1, row)
        if self.progress is not None:
            self.progress(epoch + 1, self.config.epochs)


def _callback(state: _MonitorState) -> Any:
    """The Keras callback around `state` (defined here so Keras is imported only when training)."""
    keras = keras_module()

    class Monitor(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            state.epoch_end(self.model, epoch, logs or {})

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            if state.cancel is not None and state.cancel.is_set():
                self.model.stop_training = True

    return Monitor()


@dataclass
class FitResult:
    model: Forecaster
    history: list[dict[str, float]]
    best_epoch: int


#: A kind's fit: (samples, train end indices, validation end indices, config, progress, cancel) ->
#: the fitted model. Scalers come from the training rows only (`SampleSet.fit_preprocessing`).
Fitter = Callable[
    [SampleSet, np.ndarray, np.ndarray, "TrainConfig", "Progress | None", "threading.Event | None"], FitResult
]


def fit_network(
    samples: SampleSet,
    train_ends: np.ndarray,
    val_ends: np.ndarray,
    config: TrainConfig,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> FitResult:
    """Fit scalers on the training rows, then `config.ensemble` networks on the training samples.

    Member i is seeded with `config.seed + i` and stopped early on its own validation score;
    the post-hoc factors (close shrink, p_up calibration) are fitted on the averaged outputs.
    """
    keras = keras_module()
    preprocessing = samples.fit_preprocessing(train_ends)
    scaled = preprocessing.scale_features(samples.features)
    x_train = make_windows(scaled, train_ends, config.window)
    y_train = preprocessing.target_scaler.transform(samples.targets[train_ends]).astype(np.float32)
    up_train = samples.up[train_ends].astype(np.float32)[:, None]
    x_val = make_windows(scaled, val_ends, config.window)
    members, history, best_epochs = [], [], []
    total = config.epochs * config.ensemble
    for i in range(config.ensemble):
        keras.utils.set_random_seed(config.seed + i)

        def member_progress(epoch: int, _total: int, done: int = i * config.epochs) -> None:
            if progress is not None:
                progress(done + epoch, total)

        state = _MonitorState(
            config=config,
            x_val=x_val,
            y_val=samples.targets[val_ends],
            preprocessing=preprocessing,
            progress=member_progress,
            cancel=cancel,
        )
        network = build_network(config.network_spec(x_train.shape[2]))
        network.fit(
            x_train,
            {REGRESSION_HEAD: y_train, CLASSIFICATION_HEAD: up_train},
            batch_size=config.batch_size,
            epochs=config.epochs,
            shuffle=True,  # within the training part only: the parts are separate arrays
            verbose=0,
            callbacks=[_callback(state)],
        )
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("training was cancelled")
        if state.best_weights is not None:
            network.set_weights(state.best_weights)
        members.append(network)
        history += [{**row, "member": i} for row in state.history]
        best_epochs.append(state.best_epoch)
    metadata: dict[str, Any] = {"config": config.to_dict(), "best_epochs": best_epochs}
    model = LoadedModel.from_keras(combine_members(members), preprocessing, metadata)
    if len(val_ends):
        calibrate_on_validation(model, model.raw_outputs(x_val), samples.up[val_ends], samples.targets[val_ends, CLOSE],
                                config)
    return FitResult(model, history, best_epochs[0])


def calibrate_on_validation(
    model: Forecaster,
    raw_val: tuple[np.ndarray, np.ndarray],
    up_val: np.ndarray,
    close_val: np.ndarray,
    config: TrainConfig,
) -> None:
    """Fit the close shrink and the p_up calibration on the validation outputs (any kind)."""
    pre = model.preprocessing
    reg, p_up = raw_val
    if config.shrink_close:
        close_shrink = fit_close_shrink(pre.target_scaler.inverse(reg)[:, CLOSE], close_val)
        pre = replace(pre, close_shrink=close_shrink)
    if config.calibrate_p_up:
        pre = replace(pre, p_up_shrink=fit_p_up_shrink(p_up, up_val))
    log.info("fitted on validation: close shrink %.2f, p_up shrink %.2f", pre.close_shrink, pre.p_up_shrink)
    model.preprocessing = pre
    model.metadata["close_shrink"] = pre.close_shrink
    model.metadata["p_up_shrink"] = pre.p_up_shrink


def fit_p_up_shrink(p_up: np.ndarray, up: np.ndarray) -> float:
    """The factor in [0, 1] pulling p_up toward 0.5 that minimises validation log loss.

    A classifier trained on a near coin flip is easily overconfident, and in a new regime its
    Brier score can fall below the coin flip's; shrinking toward 0.5 keeps the direction (and the
    accuracy) and fixes the confidence, using held-out rows only.
    """
    grid = np.linspace(0.0, 1.0, 21)
    losses = [log_loss(0.5 + f * (p_up - 0.5), up) for f in grid]
    return float(grid[int(np.argmin(losses))])


def fit_close_shrink(predicted: np.ndarray, actual: np.ndarray) -> float:
    """The factor in [0, 1] on the predicted close log ratio that minimises validation MAE.

    At 5 minutes the network's close forecast is a faint signal under much noise; under MAE,
    pulling it toward persistence by as much as held-out data supports (and no more) removes
    noise the network fitted. Fitted on the validation part, so the test part stays unseen.
    """
    grid = np.linspace(0.0, 1.0, 21)
    errors = [float(np.mean(np.abs(actual - a * predicted))) for a in grid]
    return float(grid[int(np.argmin(errors))])


def train(
    kind: str,
    candles: pd.DataFrame,
    config: TrainConfig,
    progress: Progress | None = None,
    *,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train a model of `kind` (see `shared.model.forecaster.KINDS`) on `candles`."""
    return train_model(candles, config, progress, cancel=cancel, fitter=fitter_of(kind))


#: Validation rows needed to calibrate intervals (fewer: the model has none).
MIN_CALIBRATION_ROWS = 50


def finish_fit(model: Forecaster, candles: pd.DataFrame, samples: SampleSet, train_ends: np.ndarray,
               val_ends: np.ndarray) -> None:
    """What every kind gets after its fit, from the training and validation parts only: the
    calibrated intervals and the direct horizon heads."""
    if len(val_ends) >= MIN_CALIBRATION_ROWS:
        calibrate_intervals(model, candles, val_ends)
    heads = fit_horizon_heads(samples, model.preprocessing.scale_features(samples.features), train_ends, val_ends)
    if heads is not None:
        model.preprocessing = replace(model.preprocessing, horizons=heads.to_dict())


def calibrate_intervals(model: Forecaster, candles: pd.DataFrame, validation_ends: np.ndarray) -> None:
    """Split conformal on the validation part: the test part stays unseen (`shared.model.intervals`)."""
    forecast = model.forecast(candles, validation_ends)
    nxt = validation_ends + 1
    actual = {t: candles[t].to_numpy(np.float64)[nxt] for t in INTERVAL_TARGETS}
    predicted = {t: getattr(forecast, t) for t in INTERVAL_TARGETS}
    sigma = predicted_scale(forecast.high, forecast.low)
    conformal = fit_conformal(actual, predicted, sigma)
    model.preprocessing = replace(model.preprocessing, conformal=conformal.to_dict())
    log.info("intervals calibrated on %d validation rows: close multipliers 80%% %.2f, 95%% %.2f", len(sigma),
             conformal.multiplier("close", 0.8), conformal.multiplier("close", 0.95))


def train_model(
    candles: pd.DataFrame,
    config: TrainConfig,
    progress: Progress | None = None,
    *,
    cancel: threading.Event | None = None,
    fitter: Fitter | None = None,
) -> TrainResult:
    """Train on the oldest part of `candles`, stop early on the next, evaluate on the newest.

    `fitter` is the kind's fit (default: the LSTM's `fit_network`); everything else (samples,
    the split with gaps, the evaluation beside the baselines on the test part) is the same for
    every kind.

    `candles` has the columns of `shared.market.binance_csv.COLUMNS` (one symbol and interval).
    `progress(epoch, max_epochs)` is called after each epoch; `cancel` aborts between batches.
    """
    started = time.perf_counter()
    candles = candles.sort_values("open_time").drop_duplicates("open_time").reset_index(drop=True)
    samples = SampleSet.build(candles, config.window, config.interval_ms, FEATURE_SETS[config.features])
    split = temporal_split(samples.end_indices, config.window, config.split, config.test_rows)
    if len(split.train) < MIN_TRAIN_SAMPLES:
        raise ValueError(
            f"only {len(split.train)} training samples from {len(candles)} candles; need more data "
            f"(each sample needs {config.window} + lookback consecutive candles)"
        )
    log.info("samples: %s (gap %d between parts)", split.sizes(), split.gap)
    fit = (fitter or fit_network)(samples, split.train, split.validation, config, progress, cancel)
    finish_fit(fit.model, candles, samples, split.train, split.validation)
    evaluation = None
    test_start = None
    if len(split.test):
        evaluation = evaluate(fit.model, candles, end_indices=split.test)
        fit.model.metadata["feature_importance"] = permutation_importance(fit.model, candles, split.test,
                                                                         seed=config.seed)
        test_start = int(samples.open_times[split.test[0] + 1])
        for alarm in evaluation.alarms:
            log.warning(alarm)
    times = samples.open_times
    train_until = int(times[split.train[-1] + 1])  # train_model refuses an empty training part
    validation_until = int(times[split.validation[-1] + 1]) if len(split.validation) else None
    fit.model.metadata.update(
        {
            "data_start": int(times[0]),
            "data_end": int(times[-1]),
            "test_start": test_start,
            "split_sizes": split.sizes(),
        }
    )
    return TrainResult(
        model=fit.model,
        metrics=evaluation.model_metrics if evaluation else {},
        baseline_metrics=evaluation.baseline_metrics if evaluation else {},
        test_start=test_start,
        data_start=int(times[0]),
        data_end=int(times[-1]),
        config=config,
        evaluation=evaluation,
        alarms=list(evaluation.alarms) if evaluation else [],
        history=fit.history,
        best_epoch=fit.best_epoch,
        split_sizes=split.sizes(),
        train_seconds=time.perf_counter() - started,
        train_until=train_until,
        validation_until=validation_until if len(split.validation) else train_until,
    )
