from __future__ import annotations

import numpy as np
import pytest

from shared.model.dataset import (
    CLOSE,
    SampleSet,
    Scaler,
    compute_targets,
    make_windows,
    sample_gap,
    temporal_split,
    valid_end_indices,
)
from shared.model.features import LOOKBACK
from shared.model.synthetic import synthetic_candles

WINDOW = 20


def test_targets_are_log_ratios_to_the_last_close() -> None:
    candles = synthetic_candles(10, seed=1)
    targets, up = compute_targets(candles)
    close = candles["close"].to_numpy()
    assert targets[3, CLOSE] == pytest.approx(np.log(close[4] / close[3]))
    assert targets[3, 1] == pytest.approx(np.log(candles["high"].iloc[4] / close[3]))
    assert up[3] == float(close[4] > candles["open"].iloc[4])
    assert np.isnan(targets[-1]).all() and np.isnan(up[-1])


def test_split_is_ordered_with_gaps_and_sizes() -> None:
    ends = np.arange(LOOKBACK + WINDOW - 1, 5000)
    split = temporal_split(ends, WINDOW)
    gap = sample_gap(WINDOW)
    assert gap > WINDOW
    assert split.validation[0] - split.train[-1] >= gap
    assert split.test[0] - split.validation[-1] >= gap
    for part in (split.train, split.validation, split.test):
        assert np.all(np.diff(part) > 0)
    n = len(ends)
    assert abs(len(split.train) - (0.70 * n - gap)) < 3
    assert abs(len(split.validation) - (0.15 * n - gap)) < 3
    assert abs(len(split.test) - 0.15 * n) < 2


def test_parts_share_no_candle() -> None:
    ends = np.arange(LOOKBACK + WINDOW - 1, 3000)
    split = temporal_split(ends, WINDOW)

    def candles_read(e: np.ndarray) -> set[int]:
        # inputs e-W+1-LOOKBACK .. e and the target e+1
        return set(range(int(e.min()) - WINDOW + 1 - LOOKBACK, int(e.max()) + 2))

    assert not candles_read(split.train) & candles_read(split.validation)
    assert not candles_read(split.validation) & candles_read(split.test)


def test_test_rows_fixes_the_test_part() -> None:
    ends = np.arange(LOOKBACK + WINDOW - 1, 3000)
    split = temporal_split(ends, WINDOW, test_rows=500)
    assert split.test[-1] == ends[-1] and len(split.test) == 500
    assert split.test[0] - split.validation[-1] == sample_gap(WINDOW)


def test_windows_end_at_the_end_index() -> None:
    features = np.arange(100 * 3, dtype=np.float64).reshape(100, 3)
    windows = make_windows(features, np.array([19, 50]), WINDOW)
    assert windows.shape == (2, WINDOW, 3)
    np.testing.assert_array_equal(windows[1, -1], features[50])
    np.testing.assert_array_equal(windows[1, 0], features[50 - WINDOW + 1])


def test_windows_never_span_a_missing_candle() -> None:
    candles = synthetic_candles(400, seed=2).drop(index=200).reset_index(drop=True)
    times = candles["open_time"].to_numpy()
    ends = valid_end_indices(times, 300_000, WINDOW, with_target=True)
    first = WINDOW - 1 + LOOKBACK
    assert ends[0] == first
    # Row 200 (now the first after the gap) must not be inside any sample's span.
    for e in ends:
        span = range(e - first, e + 2)
        assert not (199 in span and 200 in span)
    assert 198 in ends and 199 not in ends  # 198's target is 199, the last before the gap


def test_scaler_uses_training_rows_only() -> None:
    candles = synthetic_candles(3000, seed=3)
    samples = SampleSet.build(candles, WINDOW)
    split = temporal_split(samples.end_indices, WINDOW)
    pre = samples.fit_preprocessing(split.train)

    # Change everything after the training part (whose last target is candle train[-1] + 1)
    # beyond recognition: nothing may move.
    changed = candles.copy()
    later = changed.index > split.train[-1] + 1
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= 1.5
    changed.loc[later, "volume"] *= 100
    changed.loc[later, "high"] *= 1.01
    pre_changed = SampleSet.build(changed, WINDOW).fit_preprocessing(split.train)
    np.testing.assert_array_equal(pre.feature_scaler.mean, pre_changed.feature_scaler.mean)
    np.testing.assert_array_equal(pre.feature_scaler.std, pre_changed.feature_scaler.std)
    np.testing.assert_array_equal(pre.target_scaler.mean, pre_changed.target_scaler.mean)
    assert pre.up_rate == pre_changed.up_rate

    # And the statistics are exactly those of the rows the training windows read.
    rows = np.arange(split.train[0] - WINDOW + 1, split.train[-1] + 1)
    np.testing.assert_allclose(pre.feature_scaler.mean, samples.features[rows].mean(axis=0))
    np.testing.assert_allclose(pre.target_scaler.mean, samples.targets[split.train].mean(axis=0))


def test_constant_target_is_rebuilt_as_the_constant() -> None:
    scaler = Scaler.fit(np.zeros((10, 1)), constant_std=1e-12)
    assert abs(scaler.inverse(np.array([[5.0]]))[0, 0]) < 1e-10


def test_unsorted_candles_are_refused() -> None:
    candles = synthetic_candles(200, seed=4)
    with pytest.raises(ValueError, match="sorted"):
        SampleSet.build(candles.iloc[::-1], WINDOW)
