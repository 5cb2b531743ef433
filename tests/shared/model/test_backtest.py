from __future__ import annotations

import numpy as np
import pytest

from shared.model.backtest import fold_bounds, fold_summary, walk_forward
from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig


def test_fold_bounds() -> None:
    bounds = fold_bounds(1000, 3, 0.3)
    assert bounds == [(700, 800), (800, 900), (900, 1000)]
    with pytest.raises(ValueError):
        fold_bounds(5, 10, 0.3)


def test_each_fold_learns_only_from_its_past() -> None:
    candles = synthetic_candles(2500, phi=0.5, seed=8)
    config = TrainConfig(window=10, units=4, epochs=2, batch_size=128, seed=1)
    result = walk_forward(candles, config, folds=2, test_fraction=0.4, train_rows=800)
    assert len(result.folds) == 2
    previous_test_end = 0
    for fold in result.folds:
        assert fold.train_end < fold.test_start <= fold.test_end
        assert fold.sizes["train"] + fold.sizes["validation"] <= 800
        assert fold.test_start > previous_test_end
        previous_test_end = fold.test_end
        assert set(fold.evaluation.metrics) == {"model", "persistence", "mean_drift", "ema"}
    assert result.pooled.model_metrics["n"] == sum(f.sizes["test"] for f in result.folds)
    second_train_ends = result.folds[1].train_end
    assert second_train_ends > result.folds[0].train_end  # the origin rolls forward
    rows = fold_summary(result)
    assert [r["fold"] for r in rows] == [1, 2] and np.isfinite(rows[0]["skill"])
