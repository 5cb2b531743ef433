"""Shared fixtures of the model tests: generated candles and one small trained model.

Training even a tiny LSTM takes seconds, so one model is trained per session and shared by the
tests that only read it (inference, artifacts, evaluation).
"""

from __future__ import annotations

import os

import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig, TrainResult, train_model

SMALL = TrainConfig(window=20, units=16, epochs=8, batch_size=64, patience=3, seed=7)


@pytest.fixture(scope="session")
def ar_candles() -> pd.DataFrame:
    """4,000 five-minute candles whose returns are AR(1) with phi = 0.6: learnable."""
    return synthetic_candles(4000, phi=0.6, seed=11)


@pytest.fixture(scope="session")
def trained(ar_candles: pd.DataFrame) -> TrainResult:
    return train_model(ar_candles, SMALL)
