"""Every model kind behind the one interface: it learns a learnable pattern, saves and loads to the
same numbers, is judged beside the baselines on the same unseen rows, and trips the leakage alarm."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.cli import main
from shared.market.binance_csv import frame_columns, write_archive_csv
from shared.model.artifacts import load_model, save_model
from shared.model.backtest import walk_forward
from shared.model.forecaster import KINDS, Forecaster
from shared.model.linear import logistic_path
from shared.model.linear_algebra import bias_penalty, sigmoid, with_bias
from shared.model.stacked import Part, predict_stacked
from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig, TrainResult, train

#: Small enough for seconds per kind; the LSTM part of it matches the other model tests.
CONFIG = TrainConfig(window=10, units=8, epochs=6, patience=2, batch_size=64, learning_rate=3e-3, lags=3,
                     gbm_rounds=150, gbm_min_data_in_leaf=50)


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    """AR(1) returns with phi 0.5: a pattern every kind can learn (and too good for real 5m data)."""
    return synthetic_candles(4000, phi=0.5, seed=21)


@pytest.fixture(scope="module")
def trained(candles: pd.DataFrame) -> dict[str, TrainResult]:
    return {kind: train(kind, candles, CONFIG) for kind in KINDS}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_beats_persistence_on_a_learnable_pattern(kind: str, trained: dict[str, TrainResult]) -> None:
    result = trained[kind]
    assert isinstance(result.model, Forecaster) and result.model.kind == kind
    persistence = result.baseline_metrics["persistence"]
    assert result.metrics["close_mae"] < 0.95 * persistence["close_mae"]
    assert result.metrics["direction_accuracy"] > 0.6


def test_every_kind_is_judged_on_the_same_rows(trained: dict[str, TrainResult]) -> None:
    starts = {r.test_start for r in trained.values()}
    rows = {tuple(r.evaluation.end_indices) for r in trained.values() if r.evaluation is not None}
    persistence = {round(r.baseline_metrics["persistence"]["close_mae"], 12) for r in trained.values()}
    assert len(starts) == 1 and len(rows) == 1 and len(persistence) == 1
    assert all(r.metrics["n"] == len(next(iter(rows))) for r in trained.values())


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_leakage_alarm_fires_for_every_kind(kind: str, trained: dict[str, TrainResult]) -> None:
    # 5-minute candles this predictable are a sign of look-ahead on real data: every kind says so.
    assert any("LEAKAGE ALARM" in alarm for alarm in trained[kind].alarms)


@pytest.mark.parametrize("kind", list(KINDS))
def test_save_and_load_give_identical_numbers(kind: str, trained: dict[str, TrainResult], candles: pd.DataFrame,
                                              tmp_path: Path) -> None:
    result = trained[kind]
    path = save_model(result, tmp_path, "BTCUSDT", "5m")
    loaded = load_model(path)
    assert type(loaded) is type(result.model)
    assert json.loads((path / "metadata.json").read_text())["kind"] == kind
    ends = np.arange(loaded.history_needed - 1, len(candles))
    before, after = result.model.forecast(candles, ends), loaded.forecast(candles, ends)
    for name in ("open", "high", "low", "close", "p_up"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
    one = loaded.predict_next(candles)
    assert one == loaded.predict_many(candles, [len(candles) - 1])[0]


def test_a_backtest_runs_any_kind(candles: pd.DataFrame) -> None:
    result = walk_forward(candles, replace(CONFIG, gbm_rounds=50), 2, kind="gbm")
    assert len(result.folds) == 2 and result.pooled.model_metrics["close_mae"] > 0


def test_the_cli_trains_every_kind(candles: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write_archive_csv(tmp_path / "ETHUSDT-5m-2024-01.csv", candles.iloc[:2500])
    fast = ["--window", "10", "--units", "4", "--epochs", "1", "--batch-size", "128"]
    assert main(["train", "--csv", str(csv), *fast, "--kind", "all", "--no-save", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in out["results"]] == list(KINDS)
    assert all(set(r["metrics"]) == {"model", "persistence", "mean_drift", "ema"} for r in out["results"])


def test_the_backtest_report_is_one_self_contained_page(candles: pd.DataFrame, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    csv = write_archive_csv(tmp_path / "ETHUSDT-5m-2024-01.csv", candles)
    report = tmp_path / "report.html"
    args = ["backtest", "--csv", str(csv), "--window", "10", "--kind", "linear", "--folds", "3",
            "--report", str(report)]
    assert main(args) == 0
    page = report.read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page and "http" not in page
    for title in ("close skill against persistence", "direction accuracy per fold", "reliability of p_up",
                  "high and low MAE beside persistence", "coverage of the 90% close interval"):
        assert title in page
    assert page.count("<svg") == 5
    assert f"report: {report}" in capsys.readouterr().out


@pytest.mark.parametrize("kind", list(KINDS))
def test_direct_horizons_are_judged_against_their_own_persistence(kind: str, trained: dict[str, TrainResult],
                                                                    candles: pd.DataFrame, tmp_path: Path) -> None:
    result = trained[kind]
    assert result.evaluation is not None
    by_horizon = result.evaluation.by_horizon()
    assert set(by_horizon["model"]) == {"1", "3", "12"} == set(by_horizon["persistence"])
    for h in ("3", "12"):
        model, persistence = by_horizon["model"][h], by_horizon["persistence"][h]
        assert model["n"] == persistence["n"] > 100
        assert persistence["skill"] == 0.0
        # AR(1) returns with phi 0.5 carry over a few candles: the 3-candle head beats persistence.
        if h == "3":
            assert model["skill"] > 0 and model["close_mae"] < persistence["close_mae"]
    # The heads travel with the model.
    loaded = load_model(save_model(result, tmp_path, "BTCUSDT", "5m"))
    ends = np.arange(loaded.history_needed - 1, len(candles) - 12)
    for h, closes in result.model.forecast_horizons(candles, ends).items():
        np.testing.assert_array_equal(closes, loaded.forecast_horizons(candles, ends)[h])


@pytest.mark.parametrize("kind", list(KINDS))
def test_several_streams_in_one_stacked_call_get_what_each_gets_alone(kind: str,
                                                                       trained: dict[str, TrainResult]) -> None:
    """A burst across streams is one model call (`shared.model.stacked`): each stream's predictions,
    intervals at its own adaptive levels included, are those of the stream predicted alone."""
    model = trained[kind].model
    need = model.history_needed
    streams = [synthetic_candles(need + extra, phi=0.5, seed=seed) for seed, extra in ((1, 0), (2, 30), (3, 5))]
    ends = [np.array([need - 1]), np.arange(need + 10, need + 30), np.array([need + 2, need + 4])]
    levels = [{0.8: 0.8, 0.95: 0.95}, {0.8: 0.71, 0.95: 0.97}, {0.8: 0.86, 0.95: 0.9}]
    stacked = predict_stacked(model, [Part(frame_columns(f), e, lv) for f, e, lv in zip(streams, ends, levels,
                                                                                      strict=True)])
    for frame, end, level, rows in zip(streams, ends, levels, stacked, strict=True):
        alone = model.predict_many(frame, end, level)
        assert len(rows) == len(end)
        assert rows == alone  # bit for bit: the same rows of features, the same model call per row
        assert rows[0].intervals
    nominal = model.predict_many(streams[1], ends[1], levels[0])
    assert nominal[0].intervals["close_95"] != stacked[1][0].intervals["close_95"]  # its own levels, not the first's


@pytest.mark.parametrize("strength", [0.05, 3.0])  # p_up near 0.5 as on real candles, and far from it
def test_the_logistic_path_reaches_each_penaltys_optimum(strength: float) -> None:
    """The Hessian is reused across steps and penalties; the weights must still be each penalty's
    optimum: the penalised log-likelihood's gradient vanishes there."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(5000, 6))
    up = (rng.random(5000) < sigmoid(x @ (strength * rng.normal(size=6)) + 0.2)).astype(float)
    alphas = (1.0, 10.0, 100.0, 1000.0)
    for alpha, w in zip(alphas, logistic_path(x, up, alphas), strict=True):
        xb = with_bias(x)
        gradient = xb.T @ (sigmoid(xb @ w) - up) + bias_penalty(xb.shape[1], alpha) @ w
        assert np.max(np.abs(gradient)) < 1e-6
