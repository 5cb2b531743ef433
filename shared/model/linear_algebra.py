"""The small pieces of linear algebra the tabular kinds and the horizon heads share."""

from __future__ import annotations

import numpy as np


def flat_rows(scaled: np.ndarray, ends: np.ndarray, lags: int) -> np.ndarray:
    """[samples, lags * features]: the rows ending at each end index, newest first."""
    if len(ends) == 0:
        return np.zeros((0, lags * scaled.shape[1]))
    return np.concatenate([scaled[ends - k] for k in range(lags)], axis=1)


def with_bias(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))])


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings for large |z|."""
    result: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return result


def bias_penalty(size: int, alpha: float) -> np.ndarray:
    """alpha * I over weights whose last one (the bias) is not penalised."""
    penalty = alpha * np.eye(size)
    penalty[-1, -1] = 0.0
    return penalty


def ridge_path(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> list[np.ndarray]:
    """For each penalty alpha, the weights [features + 1, targets] minimising |xw - y|^2 + alpha |w|^2
    (the bias unpenalised); the normal equations' products are computed once for all of them."""
    xb = with_bias(x)
    gram, moments = xb.T @ xb, xb.T @ y
    return [np.linalg.solve(gram + bias_penalty(len(gram), alpha), moments) for alpha in alphas]
