"""Walk-forward backtest: k rolling-origin folds, each model trained only on what preceded it.

One test split says little at 5 minutes (a calm month flatters everyone); k folds at successive
origins show whether an edge survives regimes. The newest `test_fraction` of the samples is cut
into k consecutive test blocks; fold i trains on the samples before block i (all of them, or the
last `train_rows`), keeping the newest of those for early stopping, with a gap of
window + lookback + 1 rows between every two parts so that no candle is shared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from shared.model.dataset import SampleSet, sample_gap
from shared.model.evaluation import Evaluation, evaluate
from shared.model.features import LOOKBACK
from shared.model.forecaster import DEFAULT_KIND, fitter_of
from shared.model.training import TrainConfig, finish_fit

log = logging.getLogger(__name__)

FoldProgress = Callable[[int, int, int, int], None]  # fold, folds, epoch, epochs


@dataclass
class Fold:
    index: int
    #: Open times (ms) of the first and last candle the model learnt from (training and
    #: early-stopping parts) and of the first and last candle it predicted in its test block.
    train_start: int
    train_end: int
    test_start: int
    test_end: int
    sizes: dict[str, int]
    evaluation: Evaluation
    best_epoch: int


@dataclass
class BacktestResult:
    folds: list[Fold]
    #: All folds' test rows together, metrics recomputed on the pooled rows.
    pooled: Evaluation
    alarms: list[str] = field(default_factory=list)


def fold_bounds(n: int, folds: int, test_fraction: float) -> list[tuple[int, int]]:
    """[start, stop) positions (into the sample array) of each fold's test block."""
    if folds < 1:
        raise ValueError("folds must be >= 1")
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    block = int(n * test_fraction) // folds
    if block < 1:
        raise ValueError(f"{n} samples are too few for {folds} folds")
    first = n - block * folds
    return [(first + i * block, first + (i + 1) * block) for i in range(folds)]


def walk_forward(
    candles: pd.DataFrame,
    config: TrainConfig,
    folds: int,
    *,
    test_fraction: float = 0.3,
    train_rows: int | None = None,
    progress: FoldProgress | None = None,
    kind: str = DEFAULT_KIND,
) -> BacktestResult:
    """Train and test `folds` models of `kind` at successive origins; see the module docstring."""
    fitter = fitter_of(kind)
    candles = candles.sort_values("open_time").drop_duplicates("open_time").reset_index(drop=True)
    samples = SampleSet.build(candles, config.window, config.interval_ms)
    ends = samples.end_indices
    gap = sample_gap(config.window)
    val_share = config.split[1] / (config.split[0] + config.split[1])
    results: list[Fold] = []
    for i, (start, stop) in enumerate(fold_bounds(len(ends), folds, test_fraction)):
        test = ends[start:stop]
        past = ends[:start]
        past = past[past <= test[0] - gap]
        if train_rows is not None:
            past = past[-train_rows:]
        n_val = round(len(past) * val_share)
        train, val = past[: len(past) - n_val], past[len(past) - n_val :]
        if len(train) and len(val):
            val = val[val >= train[-1] + gap]
        if len(train) < 32:
            raise ValueError(f"fold {i + 1}: only {len(train)} training samples; use fewer folds or more data")

        def on_epoch(epoch: int, total: int, fold: int = i) -> None:
            if progress is not None:
                progress(fold + 1, folds, epoch, total)

        fold_config = replace(config, seed=config.seed + i)
        fit = fitter(samples, train, val, fold_config, on_epoch, None)
        finish_fit(fit.model, candles, samples, train, val)  # intervals and horizon heads, as training does
        evaluation = evaluate(fit.model, candles, end_indices=test)
        times = samples.open_times
        fold = Fold(
            index=i + 1,
            train_start=int(times[train[0] - config.window + 1 - LOOKBACK]),
            train_end=int(times[(val if len(val) else train)[-1] + 1]),
            test_start=int(times[test[0] + 1]),
            test_end=int(times[test[-1] + 1]),
            sizes={"train": len(train), "validation": len(val), "test": len(test)},
            evaluation=evaluation,
            best_epoch=fit.best_epoch,
        )
        log.info("fold %d/%d: skill %+.2f%%", i + 1, folds, 100 * evaluation.model_metrics["skill"])
        results.append(fold)
    pooled = Evaluation.pooled([f.evaluation for f in results])
    alarms = list(pooled.alarms)
    for f in results:
        alarms += [f"fold {f.index}: {a}" for a in f.evaluation.alarms]
    return BacktestResult(folds=results, pooled=pooled, alarms=alarms)


def fold_summary(result: BacktestResult) -> list[dict[str, float | int]]:
    """One row per fold: sizes, dates and the headline numbers of the model and persistence."""
    rows: list[dict[str, float | int]] = []
    for f in result.folds:
        m = f.evaluation.model_metrics
        p = f.evaluation.metrics["persistence"]
        rows.append(
            {
                "fold": f.index,
                "train_start": f.train_start,
                "train_end": f.train_end,
                "test_start": f.test_start,
                "test_end": f.test_end,
                "train_rows": f.sizes["train"],
                "test_rows": f.sizes["test"],
                "best_epoch": f.best_epoch,
                "close_mae": m["close_mae"],
                "persistence_close_mae": p["close_mae"],
                "skill": m["skill"],
                "dm_p_value": m["dm_p_value"],
                "direction_accuracy": m["direction_accuracy"],
                "direction_p_value": m["direction_p_value"],
                **{k: m[k] for k in ("coverage_80", "width_80", "coverage_90", "width_90") if k in m},
                "naive_width_90": p.get("width_90", float("nan")),
            }
        )
    return rows
