"""Rolling error, drift thresholds and the cool-down (pure: no Kafka, no database)."""

from __future__ import annotations

import math

import pytest

from services.predictor.rolling import DriftDetector, DriftPolicy, FilledRow, RollingError

STEP = 300_000


def row(i: int, pred: float, real: float = 100.0, base: float = 100.0, version: str = "v1", p_up: float = 0.6,
        real_open: float = 99.0) -> FilledRow:
    return FilledRow(time=i * STEP, model_version=version, pred_close=pred, real_open=real_open, real_close=real,
                     base_close=base, p_up=p_up)


def test_mape_and_persistence_are_computed_on_the_same_rows() -> None:
    rolling = RollingError(4)
    rolling.add([row(1, pred=101.0, base=99.0), row(2, pred=98.0, base=100.5)])
    stats = rolling.stats()
    assert stats.rows == 2
    assert stats.mape == pytest.approx((1.0 + 2.0) / 2)  # percent
    assert stats.persistence_mape == pytest.approx((1.0 + 0.5) / 2)
    assert stats.hit_rate == 1.0  # p_up 0.6 and the candles closed above their open


def test_a_replayed_row_counts_once_and_the_window_keeps_the_latest() -> None:
    rolling = RollingError(3)
    assert rolling.add([row(i, pred=100.0 + i) for i in range(5)]) == 5
    assert [r.time for r in rolling.rows()] == [2 * STEP, 3 * STEP, 4 * STEP]
    assert rolling.add([row(4, pred=104.0)]) == 0
    assert len(rolling) == 3
    assert rolling.latest_time == 4 * STEP


def test_direction_hit_rate_counts_misses() -> None:
    rolling = RollingError(10)
    rolling.add([row(1, 100, p_up=0.7, real=101, real_open=100), row(2, 100, p_up=0.7, real=99, real_open=100)])
    assert rolling.stats().hit_rate == 0.5


def test_empty_window_has_no_numbers() -> None:
    assert math.isnan(RollingError(3).stats().mape)


def policy(**changes: float) -> DriftPolicy:
    values = {"window": 4, "mape_threshold": 0.8, "ratio_threshold": 1.25, "cooldown_ms": 10 * STEP, **changes}
    return DriftPolicy(**values)  # type: ignore[arg-type]


def test_absolute_threshold_declares_drift_once_per_cooldown_in_candle_time() -> None:
    rolling = RollingError(4)
    detector = DriftDetector(policy(ratio_threshold=0))
    rolling.add([row(i, pred=101.0, base=101.0) for i in range(4)])  # 1% error, as bad as persistence
    drift = detector.check(rolling, "v1")
    assert drift is not None and drift.threshold == 0.8 and "MAPE 1.000%" in drift.reason
    assert drift.candle_time == 3 * STEP
    rolling.add([row(i, pred=101.0) for i in range(4, 13)])
    assert detector.check(rolling, "v1") is None  # 9 candles later: still cooling down
    rolling.add([row(13, pred=101.0)])
    assert detector.check(rolling, "v1") is not None  # 10 candles after the last one


def test_ratio_threshold_compares_with_persistence_on_the_same_rows() -> None:
    detector = DriftDetector(policy(mape_threshold=0))
    rolling = RollingError(4)
    rolling.add([row(i, pred=100.2, base=100.1) for i in range(4)])  # 0.2% vs persistence 0.1%
    drift = detector.check(rolling, "v1")
    assert drift is not None and "2.00x persistence" in drift.reason and drift.threshold == 1.25


def test_no_drift_below_both_thresholds() -> None:
    rolling = RollingError(4)
    rolling.add([row(i, pred=100.1, base=100.1) for i in range(4)])
    assert DriftDetector(policy()).check(rolling, "v1") is None


def test_drift_waits_for_a_full_window_of_the_model_in_use() -> None:
    """After a promotion the old model's errors must not make the new one look drifted."""
    detector = DriftDetector(policy())
    rolling = RollingError(4)
    rolling.add([row(i, pred=110.0, version="old") for i in range(4)])
    rolling.add([row(4, pred=110.0, version="new")])
    assert detector.check(rolling, "new") is None
    rolling.add([row(i, pred=110.0, version="new") for i in range(5, 8)])
    assert detector.check(rolling, "new") is not None


def test_cooldown_survives_a_restart_through_the_last_drift_time() -> None:
    rolling = RollingError(4)
    rolling.add([row(i, pred=110.0) for i in range(4)])
    assert DriftDetector(policy(), last_drift_ms=0).check(rolling, "v1") is None
    assert DriftDetector(policy(), last_drift_ms=-10 * STEP).check(rolling, "v1") is not None
