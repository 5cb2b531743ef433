"""Permutation feature importance on the test part: how much worse the close forecast and the
direction get when one feature's values are shuffled across samples (every lag of it at once).

Measured on rows the model never trained on, so it says what the model *uses* to generalise,
not what it memorised. Any kind: the inputs are viewed with the features on the last axis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.model.forecast import Forecast
from shared.model.forecaster import Forecaster


def _close_and_up(model: Forecaster, inputs: np.ndarray, base_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reg, p_up = model.raw_outputs(inputs)
    forecast = Forecast.from_log_ratios(base_close, model.preprocessing.log_ratios(reg),
                                        model.preprocessing.calibrate(p_up))
    return forecast.close, forecast.p_up


def permutation_importance(
    model: Forecaster, candles: pd.DataFrame, ends: np.ndarray, *, repeats: int = 3, seed: int = 0,
    max_rows: int = 5000,
) -> dict[str, dict[str, float]]:
    """Feature -> {"close_mae_increase": relative increase of close MAE, "direction_drop": accuracy
    lost}, averaged over `repeats` shuffles, on (at most `max_rows` of) the rows `ends`."""
    ends = np.asarray(ends, np.int64)[-max_rows:]
    if len(ends) == 0:
        return {}
    close = candles["close"].to_numpy(np.float64)
    opens = candles["open"].to_numpy(np.float64)
    base, real, up = close[ends], close[ends + 1], close[ends + 1] > opens[ends + 1]
    inputs = model.inputs(candles, ends)
    by_feature = inputs.reshape(len(ends), -1, len(model.preprocessing.features))  # a view: features last
    pred, p_up = _close_and_up(model, inputs, base)
    mae = float(np.mean(np.abs(real - pred)))
    accuracy = float(np.mean((p_up >= 0.5) == up))
    rng = np.random.default_rng(seed)
    result = {}
    for j, name in enumerate(model.preprocessing.features):
        maes, accuracies = [], []
        original = by_feature[:, :, j].copy()
        for _ in range(repeats):
            by_feature[:, :, j] = original[rng.permutation(len(ends))]
            shuffled, shuffled_up = _close_and_up(model, inputs, base)
            maes.append(float(np.mean(np.abs(real - shuffled))))
            accuracies.append(float(np.mean((shuffled_up >= 0.5) == up)))
        by_feature[:, :, j] = original
        result[name] = {"close_mae_increase": float(np.mean(maes)) / mae - 1 if mae > 0 else 0.0,
                        "direction_drop": accuracy - float(np.mean(accuracies))}
    return result
