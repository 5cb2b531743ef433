from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from shared.model.evaluation import common_end_indices, evaluate
from shared.model.synthetic import synthetic_candles
from shared.model.training import (
    TrainConfig,
    TrainingCancelled,
    TrainResult,
    fit_close_shrink,
    fit_p_up_shrink,
    train_model,
)

TINY = TrainConfig(window=10, units=4, epochs=2, batch_size=128, seed=3)


def test_learns_a_learnable_pattern(trained: TrainResult) -> None:
    """AR(1) returns: the model must beat persistence on held-out rows, significantly."""
    m = trained.metrics
    assert m["n"] > 400
    assert m["skill"] > 0.03
    assert m["dm_p_value"] < 0.05
    assert m["direction_accuracy"] > 0.55 and m["direction_p_value"] < 0.01
    assert m["brier"] < trained.baseline_metrics["persistence"]["brier"]
    # ... which at 5 minutes on a real market would be a leak: the alarm must say so.
    assert any("LEAKAGE ALARM" in a for a in trained.alarms)


def test_result_describes_the_run(trained: TrainResult, ar_candles: pd.DataFrame) -> None:
    times = ar_candles["open_time"]
    assert trained.data_start == times.iloc[0] and trained.data_end == times.iloc[-1]
    assert trained.evaluation is not None
    first_test = int(trained.evaluation.end_indices[0])
    assert trained.test_start == times.iloc[first_test + 1]
    assert set(trained.baseline_metrics) == {"persistence", "mean_drift", "ema"}
    assert trained.split_sizes["train"] > trained.split_sizes["validation"] > 0


def test_stops_on_a_regression_metric(trained: TrainResult) -> None:
    scores = [row["val_scaled_mae"] for row in trained.history]
    assert trained.best_epoch == int(np.argmin(scores)) + 1
    assert all("val_close_mae" in row for row in trained.history)


def test_evaluate_on_given_rows_matches_training_report(trained: TrainResult, ar_candles: pd.DataFrame) -> None:
    assert trained.evaluation is not None
    again = evaluate(trained.model, ar_candles, end_indices=trained.evaluation.end_indices)
    assert again.model_metrics == pytest.approx(trained.metrics, nan_ok=True)
    since = evaluate(trained.model, ar_candles, since_ms=trained.test_start)
    assert since.end_indices[0] == trained.evaluation.end_indices[0]


def test_progress_determinism_and_common_rows() -> None:
    candles = synthetic_candles(1500, phi=0.3, seed=5)
    calls: list[tuple[int, int]] = []
    first = train_model(candles, TINY, progress=lambda done, total: calls.append((done, total)))
    second = train_model(candles, TINY)
    assert calls == [(1, 2), (2, 2)]
    for a, b in zip(first.model.keras_model.get_weights(), second.model.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = train_model(candles, TrainConfig(window=25, units=4, epochs=1, batch_size=128))
    rows = common_end_indices(candles, [first.model, other.model])
    assert rows[0] == other.model.history_needed - 1
    assert evaluate(first.model, candles, end_indices=rows).model_metrics["n"] == len(rows)


def test_cancel() -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TrainingCancelled):
        train_model(synthetic_candles(1000, seed=6), TINY, cancel=cancel)


def test_too_little_data_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="training samples"):
        train_model(synthetic_candles(90, seed=7), TINY)


def test_post_hoc_factors_fitted_on_validation() -> None:
    rng = np.random.default_rng(0)
    actual = rng.standard_normal(5000)
    assert fit_close_shrink(actual.copy(), actual) == 1.0
    assert fit_close_shrink(rng.standard_normal(5000), actual) <= 0.1  # noise: back to persistence
    up = (rng.random(5000) < 0.5).astype(float)
    overconfident = rng.choice([0.05, 0.95], 5000)
    assert fit_p_up_shrink(overconfident, up) <= 0.1
    informative = np.clip(0.5 + 0.3 * (up - 0.5) + rng.normal(0, 0.05, 5000), 0.01, 0.99)
    assert fit_p_up_shrink(informative, up) == 1.0
