from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from shared.model.features import (
    FEATURE_SETS,
    FEATURES,
    LOOKBACK,
    OHLC_FEATURES,
    compute_features,
    feature_frame,
    required_rows,
)
from shared.model.synthetic import synthetic_candles


def test_shape_and_names() -> None:
    candles = synthetic_candles(300, seed=1)
    features = compute_features(candles)
    assert features.shape == (300, len(FEATURES))
    assert np.isfinite(features).all()
    assert list(feature_frame(candles).columns) == list(FEATURES)


@pytest.mark.parametrize("cut", [0, 1, 47, 48, 120, 298])
def test_changing_the_future_never_changes_the_past(cut: int) -> None:
    candles = synthetic_candles(300, seed=2)
    before = compute_features(candles)
    future = candles.copy()
    rng = np.random.default_rng(cut)
    rows = future.index > cut
    scale = rng.uniform(0.5, 2.0, rows.sum())
    for column in ("open", "high", "low", "close", "quote_volume", "taker_buy_quote_volume"):
        future.loc[rows, column] *= scale
    future.loc[rows, "volume"] *= rng.uniform(0.1, 10, rows.sum())
    future.loc[rows, "trades"] = rng.integers(1, 10_000, rows.sum())
    after = compute_features(future)
    np.testing.assert_array_equal(after[: cut + 1], before[: cut + 1])
    assert not np.array_equal(after[cut + 1 :], before[cut + 1 :])


def test_features_need_only_the_lookback() -> None:
    """The last rows computed from a short tail equal those computed from the full history."""
    candles = synthetic_candles(500, seed=3)
    full = compute_features(candles)
    window = 30
    tail = candles.iloc[-required_rows(window) :]
    np.testing.assert_array_equal(compute_features(tail)[LOOKBACK:], full[-window:])


def test_no_price_levels() -> None:
    """A market at 3.3x the price (and the same coin volumes) gives the same features."""
    candles = synthetic_candles(200, seed=4)
    scaled = candles.copy()
    for column in ("open", "high", "low", "close", "quote_volume", "taker_buy_quote_volume"):
        scaled[column] *= 3.3
    np.testing.assert_allclose(compute_features(scaled), compute_features(candles), atol=1e-9)


def test_does_not_import_tensorflow() -> None:
    """Features, the CSV reader and the inference path stay cheap to import (a fresh process)."""
    code = (
        "import sys, shared.model.features, shared.market.binance_csv, shared.model.inference, "
        "shared.model.evaluation; "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_ohlc_feature_set_needs_no_exchange_fields_and_equals_the_full_set_s_columns() -> None:
    candles = synthetic_candles(300, seed=3)
    full = compute_features(candles)
    plain = candles[["open_time", "open", "high", "low", "close"]]
    ohlc = compute_features(plain, OHLC_FEATURES)
    assert ohlc.shape == (300, len(OHLC_FEATURES)) and set(FEATURE_SETS) == {"full", "ohlc"}
    assert not {"volume_ratio", "trades_ratio", "taker_buy_share"} & set(OHLC_FEATURES)
    for j, name in enumerate(OHLC_FEATURES):
        assert np.array_equal(ohlc[:, j], full[:, FEATURES.index(name)]), name
    with pytest.raises(ValueError, match="need columns"):
        compute_features(plain)
