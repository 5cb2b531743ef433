"""The trainer's heavy work, run in a worker process: train, compare, rebuild the series.

Everything here is plain blocking code on plain data (frames in, dataclasses out), because it
runs in a separate process: TensorFlow holds the GIL for long stretches, and a consumer whose
event loop stalls misses its heartbeats and is thrown out of its group.

The comparison with the champion uses the most recent rows that *neither* model trained on:
from the later of the two test-part starts on. The champion was trained earlier, so those are
the candidate's own test rows, but a champion trained on later data than the candidate's test
part would otherwise be judged on its own training rows.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.model.dataset import valid_end_indices
from shared.model.evaluation import Evaluation, common_end_indices, evaluate
from shared.model.forecast import Forecast
from shared.model.forecaster import Forecaster
from shared.model.intervals import SERVED_LEVELS, served, to_json
from shared.model.metrics import finite_metrics
from shared.model.training import TrainConfig

log = logging.getLogger(__name__)

SERIES_CHUNK = 4096  # windows per forward pass: bounds memory for a year of 5m candles


@dataclass(frozen=True)
class TrainJob:
    symbol: str
    interval: str
    candles: pd.DataFrame
    config: TrainConfig
    model_dir: Path
    champion_version: str | None = None
    champion_path: str | None = None
    kinds: tuple[str, ...] = ("lstm",)


@dataclass(frozen=True)
class Comparison:
    """Candidate, champion (if any) and baselines on the same rows."""

    rows: int
    since_ms: int | None
    candidate: dict[str, float]
    champion: dict[str, float] | None
    baselines: dict[str, dict[str, float]]
    note: str = ""


@dataclass(frozen=True)
class TrainOutcome:
    version: str
    artifact_path: str
    data_start: int
    data_end: int
    test_start: int | None
    comparison: Comparison
    #: Open time of the last predicted candle of the training and validation parts.
    train_until: int | None
    validation_until: int | None
    train_seconds: float
    best_epoch: int
    alarms: list[str] = field(default_factory=list)
    kind: str = "lstm"


def worker_init() -> None:
    """Worker process set-up: TensorFlow quiet, logs like the parent's."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")


@dataclass(frozen=True)
class Candidates:
    """Every kind of one run: the models trained (each compared with the champion on the same
    rows) and the kinds that failed, with why."""

    outcomes: list[TrainOutcome]
    failures: dict[str, str]

    def best(self) -> TrainOutcome | None:
        """The lowest close MAE on the compared rows (all kinds share the split, so the same rows)."""
        scored = [o for o in self.outcomes if "close_mae" in o.comparison.candidate]
        return min(scored, key=lambda o: o.comparison.candidate["close_mae"]) if scored else None


def train_candidates(job: TrainJob) -> Candidates:
    """Train each kind of `job` in turn; a kind that fails does not stop the others."""
    champion, note = _load_champion(job)
    outcomes, failures = [], {}
    for kind in job.kinds:
        try:
            outcomes.append(train_candidate(job, kind, champion, note))
        except Exception as exc:
            log.exception("training %s for %s failed", kind, job.symbol)
            failures[kind] = f"{type(exc).__name__}: {exc}"
    return Candidates(outcomes, failures)


def train_candidate(job: TrainJob, kind: str, champion: Forecaster | None, note: str = "") -> TrainOutcome:
    from shared.model.artifacts import save_model
    from shared.model.training import train

    result = train(kind, job.candles, job.config)
    path = save_model(result, job.model_dir, job.symbol, job.interval)
    comparison = compare(result.model, champion, job.candles, result.test_start, note, result.evaluation)
    return TrainOutcome(
        kind=kind,
        version=path.name,
        artifact_path=str(path),
        data_start=result.data_start,
        data_end=result.data_end,
        test_start=result.test_start,
        comparison=comparison,
        train_until=result.train_until,
        validation_until=result.validation_until,
        train_seconds=result.train_seconds,
        best_epoch=result.best_epoch,
        alarms=list(result.alarms),
    )


@dataclass(frozen=True)
class VariantJob:
    """A variant of a promoted model: the same kind on the same candles, another feature set."""

    symbol: str
    interval: str
    candles: pd.DataFrame
    config: TrainConfig
    model_dir: Path
    kind: str
    features: str = "ohlc"


def train_variant(job: VariantJob) -> dict[str, Any]:
    """Train and save the variant; returns what `models.variants` records of it (its test metrics
    beside the baselines on the same split as the model it belongs to)."""
    from shared.model.artifacts import save_model
    from shared.model.training import train

    result = train(job.kind, job.candles, replace(job.config, features=job.features))
    path = save_model(result, job.model_dir, job.symbol, job.interval)
    return {"version": path.name, "artifact_path": str(path), "kind": job.kind, "features": job.features,
            "metrics": finite_metrics(result.metrics),
            "baseline_metrics": {name: finite_metrics(m) for name, m in result.baseline_metrics.items()}}


def _load_champion(job: TrainJob) -> tuple[Forecaster | None, str]:
    if job.champion_path is None:
        return None, ""
    from shared.model.artifacts import load_model

    try:
        return load_model(job.champion_path), ""
    except Exception as exc:  # a champion we cannot run cannot be compared with: say so, go on
        log.error("champion %s cannot be loaded: %s", job.champion_version, exc)
        return None, f"champion {job.champion_version} could not be loaded ({exc})"


def compare(
    candidate: Forecaster, champion: Forecaster | None, candles: pd.DataFrame, test_start: int | None, note: str = "",
    tested: Evaluation | None = None,
) -> Comparison:
    """Candidate and champion on the same rows; `tested` is the candidate's own test evaluation,
    used as it is when those are the rows (no champion, or one trained before them)."""
    since = test_start
    champion_start = champion.metadata.get("test_start") if champion is not None else None
    if since is not None and champion_start is not None:
        since = max(since, int(champion_start))
    models = [candidate] if champion is None else [candidate, champion]
    ends = common_end_indices(candles, models, since) if since is not None else np.zeros(0, np.int64)
    if len(ends) == 0 and test_start is not None and since != test_start:
        note = (note + "; " if note else "") + "the champion trained on all of the candidate's test rows"
        since = test_start
        ends = common_end_indices(candles, models, since)
    if len(ends) == 0:
        return Comparison(0, since, {}, None, {}, note or "no rows to compare on")
    times = candles["open_time"].to_numpy(np.int64)
    if tested is not None and np.array_equal(tested.base_times, times[ends]):
        mine = tested
    else:
        mine = evaluate(candidate, candles, end_indices=ends)
    theirs = evaluate(champion, candles, end_indices=ends).model_metrics if champion is not None else None
    return Comparison(
        rows=len(ends),
        since_ms=since,
        candidate=finite_metrics(mine.model_metrics),
        champion=finite_metrics(theirs) if theirs is not None else None,
        baselines={name: finite_metrics(m) for name, m in mine.baseline_metrics.items()},
        note=note,
    )


@dataclass(frozen=True)
class SeriesJob:
    candles: pd.DataFrame
    artifact_path: str
    data_start: int
    train_until: int | None
    validation_until: int | None
    data_end: int
    levels: tuple[float, ...] = SERVED_LEVELS


@dataclass(frozen=True)
class SeriesRows:
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    amplitude: np.ndarray
    p_up: np.ndarray
    split: list[str]
    #: Served interval label -> (lo, hi) arrays.
    bounds: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def records(self) -> list[tuple[Any, ...]]:
        return [
            (int(self.time[i]), float(self.open[i]), float(self.high[i]), float(self.low[i]), float(self.close[i]),
             float(self.amplitude[i]), float(self.p_up[i]), self.split[i],
             to_json({k: (float(lo[i]), float(hi[i])) for k, (lo, hi) in self.bounds.items()}))
            for i in range(len(self.time))
        ]


def rebuild_series(job: SeriesJob) -> SeriesRows:
    """The model's prediction of every stored candle that has a full history, with its split.

    `train`/`validation`: the model was fitted (or early-stopped) on that candle; `test`: it was
    not, including candles older than its training data; `live`: candles after its training data.
    """
    from shared.model.artifacts import load_model

    model = load_model(job.artifact_path)
    times = job.candles["open_time"].to_numpy(np.int64)
    ends = valid_end_indices(times, model.interval_ms, model.window, with_target=False)
    asked = {level: level for level in job.levels}
    parts = [model.forecast(job.candles, ends[i : i + SERIES_CHUNK], asked) for i in range(0, len(ends), SERIES_CHUNK)]
    targets = times[ends] + model.interval_ms
    train_until = job.train_until if job.train_until is not None else job.data_start - 1
    validation_until = job.validation_until if job.validation_until is not None else train_until
    split = np.select(
        [targets < job.data_start, targets <= train_until, targets <= validation_until, targets <= job.data_end],
        ["test", "train", "validation", "test"],
        default="live",
    )
    return SeriesRows(
        time=targets,
        open=np.concatenate([p.open for p in parts]) if parts else np.zeros(0),
        high=np.concatenate([p.high for p in parts]) if parts else np.zeros(0),
        low=np.concatenate([p.low for p in parts]) if parts else np.zeros(0),
        close=np.concatenate([p.close for p in parts]) if parts else np.zeros(0),
        amplitude=np.concatenate([p.amplitude for p in parts]) if parts else np.zeros(0),
        p_up=np.concatenate([p.p_up for p in parts]) if parts else np.zeros(0),
        split=[str(s) for s in split],
        bounds=served(Forecast.concat(parts).bounds, job.levels) if parts else {},
    )
