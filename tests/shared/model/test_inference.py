from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.model.artifacts import load_model, save_model
from shared.model.dataset import Preprocessing, Scaler
from shared.model.inference import LoadedModel
from shared.model.network import NetworkSpec, build_network
from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig, TrainResult, train_model


def test_fast_path_equals_keras(trained: TrainResult, ar_candles: pd.DataFrame) -> None:
    model = trained.model
    ends = np.arange(model.history_needed - 1, len(ar_candles) - 1, 7)
    windows = model.windows(ar_candles, ends)
    fast_reg, fast_p = model.raw_outputs(windows)
    keras_reg, keras_p = model.keras_outputs(windows)
    np.testing.assert_allclose(fast_reg, keras_reg, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fast_p, keras_p, atol=1e-5, rtol=0)
    one_reg, one_p = model.raw_outputs(windows[:1])
    keras_one_reg, keras_one_p = model.keras_outputs(windows[:1], use_predict=False)
    np.testing.assert_allclose(one_reg, keras_one_reg, atol=1e-5, rtol=0)
    np.testing.assert_allclose(one_p, keras_one_p, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layers", [1, 2])
def test_fast_path_equals_keras_for_both_depths_and_dropout(layers: int) -> None:
    spec = NetworkSpec(window=12, n_features=5, layers=layers, units=7, dropout=0.3)
    network = build_network(spec)
    pre = Preprocessing(
        window=12,
        interval_ms=300_000,
        feature_scaler=Scaler(np.zeros(5), np.ones(5)),
        target_scaler=Scaler(np.zeros(4), np.ones(4)),
        up_rate=0.5,
    )
    model = LoadedModel.from_keras(network, pre)
    windows = np.random.default_rng(layers).standard_normal((300, 12, 5)).astype(np.float32) * 2
    fast = model.raw_outputs(windows)
    slow = model.keras_outputs(windows)
    np.testing.assert_allclose(fast[0], slow[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(fast[1], slow[1], atol=1e-5, rtol=0)


def test_predict_next_equals_batch_path(trained: TrainResult, ar_candles: pd.DataFrame) -> None:
    model = trained.model
    for last in (model.history_needed, 1000, len(ar_candles) - 1):
        one = model.predict_next(ar_candles.iloc[: last + 1])
        many = model.predict_many(ar_candles, [last - 1, last])[1]
        assert one.base_time == many.base_time == int(ar_candles["open_time"].iloc[last])
        assert one.target_time == one.base_time + 300_000
        for field in ("open", "high", "low", "close", "p_up"):
            assert getattr(one, field) == pytest.approx(getattr(many, field), rel=1e-12)


def test_next_candle_is_a_possible_candle(trained: TrainResult, ar_candles: pd.DataFrame) -> None:
    model = trained.model
    ends = list(range(model.history_needed - 1, len(ar_candles), 50))
    for candle in model.predict_many(ar_candles, ends):
        assert candle.low <= min(candle.open, candle.close) <= max(candle.open, candle.close) <= candle.high
        assert candle.amplitude == pytest.approx((candle.high - candle.low) / candle.open)
        assert 0 <= candle.p_up <= 1
    event = candle.to_prediction("BTCUSDT", "5m", model.version)
    assert event.close == candle.close and event.target_time == candle.target_time


def test_price_level_does_not_matter(trained: TrainResult, ar_candles: pd.DataFrame) -> None:
    """Trained around 30k, asked at 100k: the same relative forecast."""
    model = trained.model
    factor = 100_000 / float(ar_candles["close"].iloc[-1])
    scaled = ar_candles.copy()
    for column in ("open", "high", "low", "close", "quote_volume", "taker_buy_quote_volume"):
        scaled[column] *= factor
    here = model.predict_next(ar_candles)
    there = model.predict_next(scaled)
    assert there.close == pytest.approx(here.close * factor, rel=1e-9)
    assert there.high == pytest.approx(here.high * factor, rel=1e-9)
    assert there.p_up == pytest.approx(here.p_up, abs=1e-9)


def test_refuses_short_or_gapped_history(trained: TrainResult, ar_candles: pd.DataFrame) -> None:
    model = trained.model
    with pytest.raises(ValueError, match="need"):
        model.predict_next(ar_candles.iloc[: model.history_needed - 1])
    gapped = ar_candles.drop(index=len(ar_candles) - 10)
    with pytest.raises(ValueError, match="gap"):
        model.predict_next(gapped)
    with pytest.raises(ValueError, match="end indices"):
        model.predict_many(ar_candles, [3])


def test_ensemble_fast_path_save_and_load(tmp_path: Path) -> None:
    candles = synthetic_candles(1200, phi=0.5, seed=12)
    config = TrainConfig(window=10, units=4, epochs=2, batch_size=128, ensemble=2, seed=5)
    calls: list[tuple[int, int]] = []
    result = train_model(candles, config, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (4, 4) and len(calls) == 4
    model = result.model
    assert len(model.network.members) == 2
    ends = np.arange(model.history_needed - 1, len(candles) - 1, 5)
    windows = model.windows(candles, ends)
    fast = model.raw_outputs(windows)
    slow = model.keras_outputs(windows)
    np.testing.assert_allclose(fast[0], slow[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(fast[1], slow[1], atol=1e-5, rtol=0)
    members = [m.forward(windows)[0] for m in model.network.members]
    np.testing.assert_allclose(fast[0], (members[0] + members[1]) / 2)
    loaded = load_model(save_model(result, tmp_path, "BTCUSDT", "5m"))
    assert loaded.predict_next(candles) == model.predict_next(candles)
    assert loaded.preprocessing.close_shrink == model.preprocessing.close_shrink
    assert loaded.preprocessing.p_up_shrink == model.preprocessing.p_up_shrink
