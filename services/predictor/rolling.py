"""The model's rolling error on filled `futures` rows, and the drift decision with its cool-down.

Both the model's MAPE and the persistence forecast's MAPE are computed on the same rows (the
row's `base_close` is the persistence forecast), so "the model got worse" can be told apart from
"the market got harder". Drift is judged only on a window made entirely of the model in use:
right after a promotion the window still holds the old model's errors, and retraining because of
those would retrain forever.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from shared.config import Settings


@dataclass(frozen=True)
class FilledRow:
    """A prediction whose real candle is known."""

    time: int
    model_version: str
    pred_close: float
    real_open: float
    real_close: float
    base_close: float | None
    p_up: float


class RollingError:
    """The last `size` filled rows by candle time; a row seen again (a replay) counts once."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the rolling window needs at least one row")
        self.size = size
        self._rows: dict[int, FilledRow] = {}

    def add(self, rows: Iterable[FilledRow]) -> int:
        """Add rows; returns how many were new."""
        added = 0
        for row in rows:
            if row.time not in self._rows:
                added += 1
            self._rows[row.time] = row
        if len(self._rows) > self.size:
            for time in sorted(self._rows)[: len(self._rows) - self.size]:
                del self._rows[time]
        return added

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[FilledRow]:
        return [self._rows[t] for t in sorted(self._rows)]

    @property
    def latest_time(self) -> int | None:
        return max(self._rows) if self._rows else None

    def run_of(self, version: str) -> int:
        """How many of the latest rows, counting back, were predicted by `version`."""
        count = 0
        for row in reversed(self.rows()):
            if row.model_version != version:
                break
            count += 1
        return count

    def stats(self) -> RollingStats:
        rows = self.rows()
        if not rows:
            return RollingStats(0, math.nan, math.nan, math.nan)
        real = np.array([r.real_close for r in rows])
        pred = np.array([r.pred_close for r in rows])
        mape = float(np.mean(np.abs(real - pred) / real) * 100)
        with_base = [r for r in rows if r.base_close is not None]
        persistence = (
            float(np.mean([abs(r.real_close - r.base_close) / r.real_close for r in with_base]) * 100)  # type: ignore[operator]
            if with_base
            else math.nan
        )
        hits = [(r.p_up >= 0.5) == (r.real_close > r.real_open) for r in rows]
        return RollingStats(len(rows), mape, persistence, float(np.mean(hits)))


@dataclass(frozen=True)
class RollingStats:
    """MAPE and persistence MAPE in percent (0.8 means 0.8%), hit rate as a fraction."""

    rows: int
    mape: float
    persistence_mape: float
    hit_rate: float


@dataclass(frozen=True)
class DriftPolicy:
    """When to declare drift. A threshold <= 0 switches that test off."""

    window: int
    mape_threshold: float
    ratio_threshold: float
    cooldown_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> DriftPolicy:
        return cls(
            window=settings.drift_window,
            mape_threshold=settings.drift_mape_threshold,
            ratio_threshold=settings.drift_ratio_threshold,
            cooldown_ms=settings.drift_cooldown_minutes * 60_000,
        )


@dataclass(frozen=True)
class Drift:
    """A crossed threshold: what was measured, against which bound, and why."""

    candle_time: int
    model_version: str
    stats: RollingStats
    threshold: float
    reason: str


class DriftDetector:
    """Declares drift for one symbol at most once per cool-down, counted in candle time.

    It reads a `RollingError` whose size is `policy.window`.
    """

    def __init__(self, policy: DriftPolicy, last_drift_ms: int | None = None) -> None:
        self.policy = policy
        self.last_drift_ms = last_drift_ms

    def check(self, rolling: RollingError, model_version: str) -> Drift | None:
        now = rolling.latest_time
        if now is None or rolling.run_of(model_version) < self.policy.window:
            return None
        if self.last_drift_ms is not None and now < self.last_drift_ms + self.policy.cooldown_ms:
            return None
        drift = self._crossed(rolling.stats(), now, model_version)
        if drift is not None:
            self.last_drift_ms = now
        return drift

    def _crossed(self, stats: RollingStats, now: int, version: str) -> Drift | None:
        policy = self.policy
        if policy.mape_threshold > 0 and stats.mape > policy.mape_threshold:
            reason = f"rolling MAPE {stats.mape:.3f}% over {stats.rows} candles > {policy.mape_threshold}%"
            return Drift(now, version, stats, policy.mape_threshold, reason)
        if policy.ratio_threshold > 0 and stats.persistence_mape > 0:
            ratio = stats.mape / stats.persistence_mape
            if ratio > policy.ratio_threshold:
                reason = (
                    f"rolling MAPE {stats.mape:.3f}% is {ratio:.2f}x persistence's {stats.persistence_mape:.3f}% "
                    f"over {stats.rows} candles > {policy.ratio_threshold}x"
                )
                return Drift(now, version, stats, policy.ratio_threshold, reason)
        return None
