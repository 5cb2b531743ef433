"""The predictor's pure core, alone: no Kafka, no Postgres, no clock.

The model here is a real `Forecaster` of the simplest kind (next close = last close ± a fixed
step), so what is asserted is the core's bookkeeping, not a model's quality.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.predictor.core import FutureRow, Job, StreamState, predict_streams
from services.predictor.rolling import DriftPolicy
from shared.messaging.events import Prediction, RealClose
from shared.model.dataset import Preprocessing
from shared.model.features import LOOKBACK
from shared.model.forecast import Forecast, NextCandle, next_candles
from shared.model.forecaster import Forecaster
from tests.services.predictor.support import INTERVAL, STEP, SYMBOL, candle_frame

WINDOW = 4
NEED = WINDOW + LOOKBACK  # what every kind needs: its window plus the features' lookback
POLICY = DriftPolicy(window=5, mape_threshold=0.5, ratio_threshold=0.0, cooldown_ms=10 * STEP)


@dataclass
class ShiftModel:
    """Predicts every price as the last close times `1 + shift`."""

    shift: float = 0.0
    version_name: str = "shift-v1"
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    preprocessing: Preprocessing = None  # type: ignore[assignment]

    kind = "shift"
    window = WINDOW
    history_needed = NEED
    interval_ms = STEP

    @property
    def version(self) -> str:
        return self.version_name

    def forecast(self, candles: pd.DataFrame, end_indices: Any, levels: Any = None) -> Forecast:
        base = candles["close"].to_numpy(np.float64)[np.asarray(end_indices, np.int64)] * (1 + self.shift)
        # An interval of ± (level - 0.5)% around the close: wider for a higher level asked.
        asked = {0.8: 0.8, 0.95: 0.95} | dict(levels or {})
        bounds = {f"close_{round(n * 100)}": (base * (1 - (a - 0.5) / 100), base * (1 + (a - 0.5) / 100))
                  for n, a in asked.items()}
        return Forecast(open=base, high=base, low=base, close=base, p_up=np.full(len(base), 1.7), bounds=bounds)

    def predict_many(self, candles: pd.DataFrame, end_indices: Any, levels: Any = None) -> list[NextCandle]:
        ends = np.asarray(end_indices, np.int64)
        return next_candles(self.forecast(candles, ends, levels), candles["open_time"].to_numpy(np.int64)[ends],
                            candles["close"].to_numpy(np.float64)[ends], STEP)

    def predict_next(self, candles: pd.DataFrame) -> NextCandle:
        return self.predict_many(candles, [len(candles) - 1])[0]

    def inputs(self, candles: pd.DataFrame, end_indices: Any) -> np.ndarray:
        return candles["close"].to_numpy(np.float64)[np.asarray(end_indices, np.int64)][:, None, None]

    def raw_outputs(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(inputs), 4), np.log1p(self.shift)), np.full(len(inputs), 1.7)

    def forecast_horizons(self, candles: pd.DataFrame, end_indices: Any) -> dict[int, np.ndarray]:
        return {}

    def save_files(self, folder: Path) -> tuple[str, ...]:
        return ()


def stored(predictions: list[NextCandle], version: str) -> list[FutureRow]:
    """What the store returns for newly inserted predictions."""
    at = datetime(2024, 1, 1, tzinfo=UTC)
    return [FutureRow(time=p.target_time, base_time=p.base_time, pred_open=p.open, pred_high=p.high, pred_low=p.low,
                      pred_close=p.close, pred_amplitude=p.amplitude, p_up=p.p_up, base_close=p.base_close,
                      model_version=version, predicted_at=at, intervals=p.intervals) for p in predictions]


def fill(rows: list[FutureRow], candles: pd.DataFrame) -> list[FutureRow]:
    """What the store returns for the rows that the candles fill."""
    real = {int(r.open_time): r for r in candles.itertuples()}
    return [FutureRow(**{**row.__dict__, "real_open": real[row.time].open, "real_close": real[row.time].close})
            for row in rows if row.time in real]


def new_state() -> StreamState:
    return StreamState(SYMBOL, INTERVAL, STEP, POLICY, keep=2 * NEED)


def test_the_shift_model_is_a_forecaster() -> None:
    assert isinstance(ShiftModel(), Forecaster)


def test_every_candle_with_a_full_history_is_predicted_and_p_up_is_clamped_once() -> None:
    state, candles = new_state(), candle_frame(NEED + 14)
    predictions = state.advance(candles, ShiftModel())
    # The first NEED - 1 candles lack a full history; every later one is predicted, in order.
    assert [p.base_time for p in predictions] == candles["open_time"].tolist()[NEED - 1:]
    assert all(p.target_time == p.base_time + STEP for p in predictions)
    assert all(p.p_up == 1.0 for p in predictions)  # the model said 1.7: clamped at its output


def test_no_model_predicts_nothing_but_the_candles_are_kept() -> None:
    state, candles = new_state(), candle_frame(10)
    assert state.advance(candles, None) == []
    assert state.history.last_time == int(candles["open_time"].iloc[-1])


def test_a_gap_needs_a_full_window_again() -> None:
    state, candles = new_state(), candle_frame(2 * NEED + 10)
    state.advance(candles.iloc[:NEED + 2], ShiftModel())
    after_gap = candles.iloc[NEED + 4:]  # two candles never arrive
    predicted = state.advance(after_gap, ShiftModel())
    first_after = int(after_gap["open_time"].iloc[0])
    assert state.gap_before(first_after)
    # Predictions resume once WINDOW candles after the gap exist.
    assert min(p.base_time for p in predicted) == first_after + (NEED - 1) * STEP


@dataclass
class CountingShift(ShiftModel):
    """A shift model that counts its calls."""

    calls: int = 0

    def predict_many(self, candles: pd.DataFrame, end_indices: Any, levels: Any = None) -> list[NextCandle]:
        self.calls += 1
        return super().predict_many(candles, end_indices, levels)


def test_streams_sharing_a_model_are_predicted_in_one_call_as_each_would_be_alone() -> None:
    shared, other = CountingShift(shift=0.01), CountingShift(shift=-0.02)
    frames = [candle_frame(NEED + 3, seed=seed) for seed in (1, 2, 3)]
    jobs = []
    for i, (frame, model) in enumerate(zip(frames, (shared, shared, other), strict=True)):
        state = StreamState(f"S{i}USDT", INTERVAL, STEP, POLICY, keep=2 * NEED)
        state.take(frame.iloc[:-1])  # the history, then the candle that closes now
        state.adaptive.levels[0.95] = 0.9 + i / 100  # each stream's own adaptive level
        state.take(frame.iloc[-1:])
        jobs.append(Job(state, model, frame["open_time"].to_numpy()[-2:], state.adaptive.effective()))
    rows = predict_streams(jobs)
    assert (shared.calls, other.calls) == (1, 1)
    for job, frame, got in zip(jobs, frames, rows, strict=True):
        alone = StreamState("X", INTERVAL, STEP, POLICY, keep=2 * NEED)
        alone.take(frame)
        assert got == alone.predict_with(job.model, job.times, job.levels)
        assert [p.base_time for p in got] == frame["open_time"].tolist()[-2:]
        assert got[0].intervals["close_95"] != alone.predict_with(job.model, job.times)[0].intervals["close_95"]


def test_missing_history_is_asked_for_once_then_known() -> None:
    state, candles = new_state(), candle_frame(NEED + 10)
    first = int(candles["open_time"].iloc[NEED + 5])
    state.history.floor = int(candles["open_time"].iloc[0])
    missing = state.missing_history(first, NEED)
    assert missing == (first - NEED * STEP, first)
    state.history.loaded(candles.iloc[5 : NEED + 5], *missing)
    assert state.missing_history(first, NEED) is None


def test_settle_turns_stored_and_filled_rows_into_events_in_order() -> None:
    state, candles = new_state(), candle_frame(NEED + 4)
    model = ShiftModel()
    rows = stored(state.advance(candles.iloc[: NEED + 2], model), model.version)
    outcome = state.settle(rows, [], model.version, upto=int(candles["open_time"].iloc[NEED + 1]), detected_at=0)
    assert [type(e) for e in outcome.events] == [Prediction] * len(rows)
    assert [e.target_time for e in outcome.predictions] == [r.time for r in rows]

    nxt = candles.iloc[NEED + 2 : NEED + 3]
    new_rows = stored(state.advance(nxt, model), model.version)
    filled = fill(rows, nxt)
    outcome = state.settle(new_rows, filled, model.version, upto=int(nxt["open_time"].iloc[0]), detected_at=0)
    assert [type(e) for e in outcome.events] == [RealClose, Prediction]
    real_close = outcome.real_closes[0]
    assert real_close.time == int(nxt["open_time"].iloc[0])
    assert real_close.err_close == real_close.real_close - real_close.pred_close
    assert len(state.rolling) == 1 and outcome.drift is None


def test_drift_is_declared_once_per_cool_down_on_a_window_of_the_model_in_use() -> None:
    state, candles = new_state(), candle_frame(NEED + 40)
    bad = ShiftModel(shift=0.05)  # 5% off: far over the 0.5% MAPE threshold
    rows = stored(state.advance(candles.iloc[:NEED], bad), bad.version)
    drifts = []
    for i in range(NEED, NEED + 34):
        candle = candles.iloc[i : i + 1]
        new_rows = stored(state.advance(candle, bad), bad.version)
        filled = fill(rows, candle)
        outcome = state.settle(new_rows, filled, bad.version, upto=int(candle["open_time"].iloc[0]), detected_at=7)
        rows = new_rows
        if outcome.drift is not None:
            drifts.append((i, outcome))
    first_index, first = drifts[0]
    # Not before the window holds POLICY.window filled rows of this model; then once per cool-down.
    assert first_index == NEED + POLICY.window - 1
    assert first.drift_event is not None and first.drift_event.detected_at == 7
    assert first.drift_event.model_version == bad.version and first.drift_event.window == POLICY.window
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(drifts)]
    assert gaps and all(g == POLICY.cooldown_ms // STEP for g in gaps)


def test_the_history_stays_bounded() -> None:
    state, candles = new_state(), candle_frame(6 * NEED)
    model = ShiftModel()
    for i in range(0, 6 * NEED, 10):
        part = candles.iloc[i : i + 10]
        state.advance(part, model)
        state.settle([], [], model.version, upto=int(part["open_time"].iloc[-1]), detected_at=0)
    assert len(state.history) <= 2 * NEED


def test_adaptive_levels_widen_after_misses_and_narrow_after_hits() -> None:
    state, candles = new_state(), candle_frame(NEED + 120)
    wrong = ShiftModel(shift=0.03)  # 3% off: every real close falls outside the ±0.3-0.45% intervals
    rows = stored(state.advance(candles.iloc[:NEED], wrong), wrong.version)
    widths = []
    for i in range(NEED, NEED + 60):
        candle = candles.iloc[i : i + 1]
        new_rows = stored(state.advance(candle, wrong), wrong.version)
        state.settle(new_rows, fill(rows, candle), wrong.version, upto=int(candle["open_time"].iloc[0]), detected_at=0)
        rows = new_rows
        lo, hi = new_rows[0].intervals["close_80"]
        widths.append(hi - lo)
    asked = state.adaptive.effective()
    assert asked[0.8] > 0.8 + 50 * 0.005 * 0.2 and asked[0.95] > 0.95  # misses move the asked level up...
    assert widths[-1] > widths[0]  # ...and the intervals the model gives widen with it
    right = ShiftModel(shift=0.0)
    before = state.adaptive.effective()[0.8]
    for i in range(NEED + 60, NEED + 110):
        candle = candles.iloc[i : i + 1]
        new_rows = stored(state.advance(candle, right), right.version)
        state.settle(new_rows, fill(rows, candle), right.version, upto=int(candle["open_time"].iloc[0]), detected_at=0)
        rows = new_rows
    assert state.adaptive.effective()[0.8] < before  # hits bring it back down


def test_the_served_levels_are_the_configured_ones() -> None:
    from shared.config import Settings

    levels = tuple(Settings(interval_levels="0.99,0.9").interval_levels)  # type: ignore[arg-type]
    assert levels == (0.9, 0.99)
    with pytest.raises(ValueError):
        Settings(interval_levels="0.3")  # type: ignore[arg-type]
    state, candles = StreamState(SYMBOL, INTERVAL, STEP, POLICY, keep=2 * NEED, levels=levels), candle_frame(NEED + 2)
    [*_, last] = state.advance(candles, ShiftModel())
    lo90, hi90 = last.intervals["close_90"]
    lo99, hi99 = last.intervals["close_99"]
    assert lo99 < lo90 < last.close < hi90 < hi99
    assert set(state.adaptive.effective()) == {0.9, 0.99}
