"""Calibrated intervals: split conformal on the validation part, scaled by recent volatility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.model.baselines import persistence
from shared.model.intervals import conformal_quantile, fit_conformal, label, naive_bounds, predicted_scale
from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig, train


def test_the_conformal_quantile_is_the_finite_sample_one() -> None:
    scores = np.arange(1.0, 11.0)  # 1..10
    assert conformal_quantile(scores, 0.8) == 9.0  # ceil(11 * 0.8) = 9th smallest
    assert conformal_quantile(scores, 0.95) == 10.0  # never beyond the largest


def test_the_naive_interval_is_each_rows_quantile_of_its_recent_returns() -> None:
    """The strided, chunked computation gives, row by row, the definition: last close ± the level's
    quantile of the absolute log returns of the last `lookback` candles (fewer at the start)."""
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.standard_t(3, 6000) * 0.002))
    ends = np.concatenate([np.arange(0, 40), rng.integers(40, len(close), 5000)])  # 5000: over one chunk
    lookback, levels = 30, (0.8, 0.9, 0.95)
    bounds = naive_bounds(close, ends, levels, lookback=lookback)
    returns = np.abs(np.diff(np.log(close)))
    for level in levels:
        lo, hi = bounds[level]
        for i, e in enumerate(ends):
            recent = returns[max(0, e - lookback) : e]
            half = np.quantile(recent, level) if len(recent) else 0.0
            assert (lo[i], hi[i]) == (close[e] * np.exp(-half), close[e] * np.exp(half))


def test_the_scale_is_the_predicted_range() -> None:
    high, low = np.array([101.0, 100.5]), np.array([99.0, 100.4])
    np.testing.assert_allclose(predicted_scale(high, low), np.log(high / low))
    assert predicted_scale(np.array([100.0]), np.array([100.0]))[0] > 0  # never zero: scores stay finite


def test_scores_scale_with_volatility() -> None:
    rng = np.random.default_rng(2)
    sigma = np.where(np.arange(4000) % 2 == 0, 0.001, 0.01)  # calm and busy rows
    predicted = {t: np.full(4000, 100.0) for t in ("close", "high", "low")}
    actual = {t: 100.0 * np.exp(rng.normal(0, sigma)) for t in ("close", "high", "low")}
    conformal = fit_conformal(actual, predicted, sigma)
    lo, hi = conformal.bounds("close", 0.9, predicted["close"], sigma)
    inside = (actual["close"] >= lo) & (actual["close"] <= hi)
    assert abs(inside[sigma == 0.001].mean() - 0.9) < 0.03 and abs(inside[sigma == 0.01].mean() - 0.9) < 0.03
    assert np.mean(hi - lo) < 0.6 * 2 * 100 * 1.645 * 0.01  # far narrower than one width for all


@pytest.fixture(scope="module")
def noisy() -> pd.DataFrame:
    """Known noise: AR(1) returns with Gaussian innovations of 0.2%."""
    return synthetic_candles(12000, phi=0.3, sigma=0.002, seed=5)


@pytest.mark.parametrize("kind", ["linear", "gbm"])
def test_intervals_cover_their_level_on_unseen_rows(kind: str, noisy: pd.DataFrame) -> None:
    result = train(kind, noisy, TrainConfig(window=10, lags=3, gbm_rounds=100))
    metrics = result.metrics
    for level in (80, 90, 95):
        assert abs(metrics[f"coverage_{level}"] - level / 100) <= 0.02, (level, metrics[f"coverage_{level}"])
    assert result.model.conformal is not None and result.model.conformal.samples == result.split_sizes["validation"]
    naive = result.baseline_metrics["persistence"]
    assert "coverage_90" in naive and "width_90" in naive


def test_every_prediction_carries_its_intervals(noisy: pd.DataFrame) -> None:
    model = train("linear", noisy, TrainConfig(window=10, lags=3)).model
    nxt = model.predict_next(noisy)
    for target in ("close", "high", "low"):
        lo80, hi80 = nxt.intervals[label(target, 0.8)]
        lo95, hi95 = nxt.intervals[label(target, 0.95)]
        assert lo95 < lo80 < getattr(nxt, target) < hi80 < hi95


def test_the_naive_interval_is_the_persistence_bar(noisy: pd.DataFrame) -> None:
    ends = np.arange(400, 1400)
    forecast = persistence(noisy, ends)
    lo, hi = forecast.bounds["close_90"]
    real = noisy["close"].to_numpy()[ends + 1]
    assert 0.85 < np.mean((real >= lo) & (real <= hi)) < 0.95
