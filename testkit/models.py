"""A tiny trained model made champion, for tests and benchmarks that need real predictions.

Trained on generated AR(1) candles in a few seconds; the predictor treats it like any champion.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from shared.config import interval_ms
from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig
from shared.storage.models_registry import ModelRecord, insert_candidate, promote

#: Window 12 (+ the features' lookback), 8 units: seconds to train, milliseconds to predict.
TINY = TrainConfig(window=12, units=8, epochs=4, patience=2, batch_size=64, learning_rate=3e-3, seed=1)


def train_tiny(model_dir: Path, symbol: str, interval: str, *, candles: int = 1200) -> Path:
    """Train and save one tiny model (blocking: TensorFlow; run it in a thread or a process)."""
    from dataclasses import replace

    from shared.model.artifacts import save_model
    from shared.model.training import train_model

    step = interval_ms(interval)
    # Close to a random walk: a test model need not be good, and a too-good one sets off
    # the training's leakage alarm.
    frame = synthetic_candles(candles, seed=7, interval_ms=step, phi=0.05)
    result = train_model(frame, replace(TINY, interval_ms=step))
    return save_model(result, model_dir, symbol, interval)


async def make_champion(db: asyncpg.Connection | asyncpg.Pool, path: Path, symbol: str, interval: str) -> str:
    """Register the saved model at `path` for `symbol` and promote it; returns its version."""
    meta = json.loads((path / "metadata.json").read_text())
    version = f"{path.name}-{symbol}"  # one artifact may serve several symbols in a test
    record = ModelRecord(version=version, symbol=symbol, interval=interval, artifact_path=str(path),
                         data_start=meta["data_start"], data_end=meta["data_end"], test_start=meta["test_start"])
    await insert_candidate(db, record)
    await promote(db, version)
    return version
