from __future__ import annotations

import math

import numpy as np
import pytest

from shared.model.baselines import actual_candles, ema, mean_drift, persistence
from shared.model.dataset import SampleSet, temporal_split
from shared.model.forecast import Forecast
from shared.model.metrics import (
    binomial_test,
    brier,
    diebold_mariano,
    finite_metrics,
    forecast_metrics,
    log_loss,
    mape,
    r2,
    smape,
)
from shared.model.report import jsonable, leakage_alarms, metrics_table
from shared.model.synthetic import synthetic_candles


def test_simple_metrics() -> None:
    a = np.array([100.0, 200.0])
    p = np.array([110.0, 180.0])
    assert mape(a, p) == pytest.approx(10.0)
    assert smape(a, p) == pytest.approx(100 * (20 / 210 + 40 / 380) / 2)
    assert r2(a, a) == 1.0
    assert brier(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == 0.25
    assert log_loss(np.array([0.5]), np.array([1.0])) == pytest.approx(math.log(2))


def test_binomial_test_and_interval() -> None:
    p_value, low, high = binomial_test(50, 100)
    assert p_value == pytest.approx(1.0) and low < 0.5 < high
    p_value, low, high = binomial_test(5_600, 10_000)
    assert p_value < 1e-20 and 0.55 < low < 0.56 < high < 0.57


def test_diebold_mariano() -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(5000)
    better = diebold_mariano(noise * 0.9, noise)
    assert better[0] < 0 and better[1] < 1e-6
    coin = diebold_mariano(rng.standard_normal(5000), rng.standard_normal(5000))
    assert coin[1] > 0.01


def _rows(n: int = 1500, seed: int = 1) -> tuple:
    candles = synthetic_candles(n, seed=seed)
    samples = SampleSet.build(candles, 20)
    split = temporal_split(samples.end_indices, 20)
    return candles, samples, split, samples.fit_preprocessing(split.train)


def test_baselines() -> None:
    candles, _, split, pre = _rows()
    ends = split.test
    close = candles["close"].to_numpy()
    pers = persistence(candles, ends)
    np.testing.assert_array_equal(pers.close, close[ends])
    np.testing.assert_array_equal(pers.open, close[ends])
    np.testing.assert_array_equal(pers.high, candles["high"].to_numpy()[ends])
    drift = mean_drift(candles, ends, pre)
    np.testing.assert_allclose(drift.close, close[ends] * np.exp(pre.target_scaler.mean[3]))
    assert np.all(drift.p_up == pre.up_rate)
    smoothed = ema(candles, ends)
    assert np.all(smoothed.high >= np.maximum(smoothed.open, smoothed.close))
    assert np.all((smoothed.p_up > 0) & (smoothed.p_up < 1))


def test_ema_baseline_is_causal() -> None:
    candles, _, split, _ = _rows()
    ends = split.validation
    before = ema(candles, ends)
    changed = candles.copy()
    changed.loc[changed.index > ends[-1], ["open", "high", "low", "close"]] *= 2
    after = ema(changed, ends)
    np.testing.assert_array_equal(before.close, after.close)


def test_forecast_metrics_of_a_perfect_forecast() -> None:
    candles, _, split, _ = _rows()
    ends = split.test
    actual = actual_candles(candles, ends)
    base = candles["close"].to_numpy()[ends]
    perfect = Forecast(actual.open, actual.high, actual.low, actual.close, actual.p_up)
    m = forecast_metrics(actual, perfect, base, persistence(candles, ends))
    assert m["close_mae"] == 0 and m["skill"] == 1 and m["direction_accuracy"] == 1
    assert m["brier"] == 0 and m["dm_p_value"] < 1e-6
    pers = forecast_metrics(actual, persistence(candles, ends), base, persistence(candles, ends))
    assert pers["skill"] == 0 and math.isnan(pers["dm_p_value"]) and math.isnan(pers["close_sign_accuracy"])
    assert finite_metrics(pers).keys() == {k for k, v in pers.items() if math.isfinite(v)}


def test_leakage_alarm() -> None:
    assert leakage_alarms({"direction_accuracy": 0.52, "skill": 0.01}, 300_000) == []
    alarms = leakage_alarms({"direction_accuracy": 0.56, "skill": 0.12}, 300_000)
    assert len(alarms) == 2 and all("LEAKAGE ALARM" in a for a in alarms)
    assert leakage_alarms({"direction_accuracy": 0.56}, 86_400_000 * 7) == []


def test_table_and_json() -> None:
    metrics = {"model": {"n": 10.0, "close_mae": 1.5, "skill": 0.01, "dm_p_value": math.nan}}
    table = metrics_table(metrics, "title")
    assert "close MAE" in table and "+1.00%" in table and "title" in table
    assert jsonable(metrics)["model"]["dm_p_value"] is None


def test_the_trading_report_counts_fees_per_side() -> None:
    from shared.model.trading import Strategy

    base = np.array([100.0, 101.0, 102.0, 101.0])
    nxt = np.array([101.0, 102.0, 101.0, 100.0])
    p_up = np.array([0.9, 0.9, 0.1, 0.5])  # long, long, short, flat
    report = Strategy(0.55, 0.45, fee=0.001).report(p_up, base, nxt)
    gross = np.log(101 / 100) + np.log(102 / 101) - np.log(101 / 102)
    assert report["gross_return"] == pytest.approx(np.expm1(gross))
    # Sides paid: open long (1), long -> short (2), short -> flat (1): four.
    assert report["net_return"] == pytest.approx(np.expm1(gross + 4 * np.log1p(-0.001)))
    assert report["trades"] == 3 and report["exposure"] == 0.75 and report["hit_rate"] == 1.0
    assert report["buy_and_hold_return"] == pytest.approx(0.0)
    flat = Strategy(0.99, 0.01).report(p_up, base, nxt)
    assert flat["trades"] == 0 and flat["net_return"] == 0.0
