"""The predictor's pure core: one `StreamState` per stream (symbol, interval), advanced by candles.

No Kafka, no Postgres, no clock: a state is restored from what the store held, then

    rows = state.advance(candles, model)          # predictions to write (first write wins)
    # ... the adapter writes `rows`, fills the rows that predicted `candles`, and reads back
    #     what is stored (a replay finds the first prediction, not a new one) ...
    outcome = state.settle(stored, filled, model_version)   # events to send, drift to record

and for many streams at once (a poll across streams, a burst of closes at the same instant),
`state.take(candles)` for each, then `predict_streams(jobs)`: one model call for every stream
that shares a model, the same predictions as `advance` one stream at a time.

so everything that decides (which candle has a full gap-free history, what is predicted, which
error enters the rolling window, when drift is declared, which events go out) is tested without
I/O (`tests/services/predictor/test_core.py`). `services.predictor.engine` is the adapter that
feeds it from Kafka and writes what it returns to Postgres and Kafka.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from services.predictor.history import CandleHistory
from services.predictor.rolling import Drift, DriftDetector, DriftPolicy, FilledRow, RollingError, RollingStats
from shared.market.binance_csv import Columns
from shared.messaging.events import DriftEvent, Prediction, RealClose
from shared.model.dataset import valid_end_indices
from shared.model.forecast import NextCandle
from shared.model.forecaster import Forecaster
from shared.model.intervals import SERVED_LEVELS, AdaptiveLevels
from shared.model.stacked import Part, predict_stacked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FutureRow:
    """A stored `futures` row: a prediction, with the real candle once known."""

    time: int
    base_time: int
    pred_open: float
    pred_high: float
    pred_low: float
    pred_close: float
    pred_amplitude: float
    p_up: float
    base_close: float | None
    model_version: str
    predicted_at: datetime
    real_open: float | None = None
    real_close: float | None = None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def filled(self) -> FilledRow:
        assert self.real_open is not None and self.real_close is not None, "not filled yet"
        return FilledRow(time=self.time, model_version=self.model_version, pred_close=self.pred_close,
                         real_open=self.real_open, real_close=self.real_close, base_close=self.base_close,
                         p_up=self.p_up)


@dataclass(frozen=True)
class Outcome:
    """What one advance leaves to send, in order: real closes, predictions, then a drift (if any)."""

    real_closes: list[RealClose] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    drift: Drift | None = None
    drift_event: DriftEvent | None = None

    @property
    def events(self) -> list[RealClose | Prediction]:
        return [*self.real_closes, *self.predictions]


class StreamState:
    """One stream's memory: its recent candles, its rolling error and its drift cool-down."""

    def __init__(self, symbol: str, interval: str, interval_ms: int, policy: DriftPolicy, keep: int,
                 floor: int | None = None, levels: tuple[float, ...] = SERVED_LEVELS) -> None:
        self.symbol = symbol
        self.interval = interval
        self.policy = policy
        self.history = CandleHistory(interval_ms, keep=keep, floor=floor)
        self.rolling = RollingError(policy.window)
        self.drift = DriftDetector(policy)
        self.adaptive = AdaptiveLevels(levels)

    def restore(self, candles: pd.DataFrame, filled: Sequence[FutureRow], last_drift_ms: int | None) -> None:
        """Start from what the store held: the last candles, the last filled rows (oldest first: the
        rolling error and the adaptive interval levels replay them), the last drift."""
        self.history.merge(candles)
        self._observe(filled)
        self.drift.last_drift_ms = last_drift_ms

    def _observe(self, filled: Sequence[FutureRow]) -> None:
        self.rolling.add(row.filled() for row in filled)
        for row in filled:
            if row.real_close is not None:
                self.adaptive.observe(row.intervals, row.real_close)

    def missing_history(self, first_time: int, rows_needed: int) -> tuple[int, int] | None:
        """[start, end) of candles before `first_time` to read from the store; None if all held.

        A batch older than the buffer (a replay, a restart, a backlog) needs this; a live candle never.
        """
        self.history.keep = max(self.history.keep, 2 * rows_needed)
        if self.history.floor is None or first_time < self.history.floor:
            self.history.floor = first_time  # nothing older is known: the stream starts here
        return self.history.missing_range(first_time, rows_needed)

    def gap_before(self, first_time: int) -> bool:
        """Whether candles precede `first_time` here but not the one right before it."""
        return self.history.gap_before(first_time)

    def take(self, candles: pd.DataFrame | Columns) -> None:
        """Add closed candles (one stream, any order; the later copy of a time wins)."""
        self.history.merge(candles)

    def part(self, model: Forecaster, times: np.ndarray, levels: Mapping[float, float] | None) -> Part:
        """The held candles of `times` that have a full, gap-free history for `model`, as a share of
        a stacked model call (`shared.model.stacked`)."""
        held = self.history.times
        valid = valid_end_indices(held, model.interval_ms, model.window, with_target=False)
        ends = np.intersect1d(self.history.positions(times), valid)
        if len(ends) < len(times):
            log.debug("%s %s: %d of %d candles lack a full gap-free history and are not predicted", self.symbol,
                      self.interval, len(times) - len(ends), len(times))
        return Part(self.history.columns, ends, levels)

    def advance(self, candles: pd.DataFrame | Columns, model: Forecaster | None) -> list[NextCandle]:
        """Take the closed candles (one stream, ascending); returns the next candle after each one
        that has a full, gap-free history (none without a model). Several streams at once:
        `take` each, then `predict_streams`."""
        self.take(candles)
        times = candles["open_time"]
        if model is None or len(times) == 0:
            return []
        return self.predict_with(model, np.asarray(times, np.int64), self.adaptive.effective())

    def predict_with(
        self, model: Forecaster, times: np.ndarray, levels: Mapping[float, float] | None = None
    ) -> list[NextCandle]:
        """The next candle after each held candle of `times` that has a full, gap-free history for
        `model` (the champion through `advance`; a challenger's shadow predictions directly)."""
        return predict_stacked(model, [self.part(model, times, levels)])[0]

    def settle(self, stored: Sequence[FutureRow], filled: Sequence[FutureRow], model_version: str | None,
               *, upto: int, detected_at: int) -> Outcome:
        """After the write: the rows stored for the predictions and the rows the candles filled.

        Keeps the history bounded (up to `upto`, the batch's last candle), adds the filled rows to
        the rolling window, and declares drift when the window (all of `model_version`) crosses
        the policy's threshold outside the cool-down.
        """
        self.history.trim(upto=upto)
        self._observe(filled)
        outcome = Outcome(
            real_closes=[real_close_event(row, self.symbol, self.interval) for row in filled],
            predictions=[prediction_event(row, self.symbol, self.interval)
                         for row in sorted(stored, key=lambda r: r.time)],
        )
        if not filled or model_version is None:
            return outcome
        drift = self.drift.check(self.rolling, model_version)
        if drift is None:
            return outcome
        event = DriftEvent(symbol=self.symbol, interval=self.interval, detected_at=detected_at,
                           window=drift.stats.rows, mape=drift.stats.mape,
                           persistence_mape=drift.stats.persistence_mape, threshold=drift.threshold,
                           reason=drift.reason, model_version=drift.model_version, candle_time=drift.candle_time)
        return Outcome(outcome.real_closes, outcome.predictions, drift, event)

    def stats(self) -> RollingStats:
        return self.rolling.stats()


@dataclass(frozen=True)
class Job:
    """One stream's candles to predict after, by one model (the champion or a challenger)."""

    state: StreamState
    model: Forecaster
    times: np.ndarray
    levels: Mapping[float, float] | None = None


def predict_streams(jobs: Sequence[Job]) -> list[list[NextCandle]]:
    """Every job's predictions, in order: one stacked model call per model, however many streams
    share it (a burst of closes at the same instant costs one inference, not one per stream)."""
    by_model: dict[int, list[int]] = defaultdict(list)
    for i, job in enumerate(jobs):
        by_model[id(job.model)].append(i)
    results: list[list[NextCandle]] = [[] for _ in jobs]
    for indices in by_model.values():
        parts = [jobs[i].state.part(jobs[i].model, jobs[i].times, jobs[i].levels) for i in indices]
        for i, rows in zip(indices, predict_stacked(jobs[indices[0]].model, parts), strict=True):
            results[i] = rows
    return results


def prediction_event(row: FutureRow, symbol: str, interval: str) -> Prediction:
    return Prediction(
        symbol=symbol,
        interval=interval,
        base_time=row.base_time,
        target_time=row.time,
        open=row.pred_open,
        high=row.pred_high,
        low=row.pred_low,
        close=row.pred_close,
        amplitude=row.pred_amplitude,
        p_up=row.p_up,
        model_version=row.model_version,
        predicted_at=int(row.predicted_at.timestamp() * 1000),
        intervals=row.intervals,
    )


def real_close_event(row: FutureRow, symbol: str, interval: str) -> RealClose:
    assert row.real_close is not None, "not filled yet"
    return RealClose(
        symbol=symbol,
        interval=interval,
        time=row.time,
        pred_close=row.pred_close,
        real_close=row.real_close,
        err_close=row.real_close - row.pred_close,
        model_version=row.model_version,
    )
