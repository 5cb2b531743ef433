"""Helpers for the closed-loop tests (predictor, trainer, e2e): candles, tiny models, publishing, the predictor as a
process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd

from shared.config import PROJECT_ROOT, Settings
from shared.market.binance_csv import frame_to_candles
from shared.market.streams import Stream
from shared.messaging import topics
from shared.messaging.events import Candle, ModelPromoted
from shared.messaging.runtime import make_broker
from shared.model.synthetic import DEFAULT_START_MS, synthetic_candles
from shared.model.training import TrainConfig
from shared.storage.candle_store import upsert_candles
from shared.storage.models_registry import ModelRecord, insert_candidate, promote
from testkit.ports import free_port

SYMBOL = "BTCUSDT"
INTERVAL = "5m"
STREAM = Stream(SYMBOL, INTERVAL)
STEP = 300_000
#: A model that trains in seconds and beats persistence on `candle_frame` data (AR(1) returns):
#: window 12 (+48 lookback = 60 candles of history), 8 units.
TINY = TrainConfig(window=12, units=8, epochs=8, patience=3, batch_size=32, learning_rate=3e-3, seed=1)
#: A model that learns nothing (one epoch at a learning rate of 1e-6): the worse candidate.
BAD = TrainConfig(window=12, units=2, epochs=1, batch_size=128, learning_rate=1e-6, seed=1)
#: The data `train_tiny` trains on.
TRAIN_SEED, TRAIN_CANDLES = 99, 1500


def candle_frame(n: int, *, seed: int = 0, start_ms: int = DEFAULT_START_MS, **kwargs: Any) -> pd.DataFrame:
    """`n` AR(1) candles (learnable: a trained model beats persistence on them)."""
    return synthetic_candles(n, seed=seed, start_ms=start_ms, **kwargs)


def as_candles(frame: pd.DataFrame, symbol: str = SYMBOL) -> list[Candle]:
    return frame_to_candles(frame, symbol, INTERVAL)


def train_tiny(model_dir: Path, copies: int = 2) -> list[Path]:
    """Train one tiny model and save it `copies` times: same weights, distinct versions."""
    from shared.model.artifacts import save_model
    from shared.model.training import train_model

    result = train_model(candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED), TINY)
    return [save_model(result, model_dir, SYMBOL, INTERVAL) for _ in range(copies)]


async def make_champion(db: asyncpg.Connection | asyncpg.Pool, path: Path, symbol: str = SYMBOL) -> str:
    """Register a saved model and promote it; returns its version (the folder name)."""
    meta = json.loads((path / "metadata.json").read_text())
    record = ModelRecord(version=path.name, symbol=symbol, interval=INTERVAL, artifact_path=str(path),
                         data_start=meta["data_start"], data_end=meta["data_end"], test_start=meta["test_start"])
    await insert_candidate(db, record)
    await promote(db, record.version)
    return record.version


async def announce(settings: Settings, version: str, path: Path, symbol: str = SYMBOL) -> None:
    event = ModelPromoted(symbol=symbol, interval=INTERVAL, version=version, artifact_path=str(path))
    await publish(settings, topics.MODELS, [event])


async def store_candles(db: asyncpg.Connection, candles: Sequence[Candle]) -> None:
    await upsert_candles(db, list(candles))


async def publish(settings: Settings, topic: str, events: Sequence[Any], symbol: str = SYMBOL) -> None:
    """Publish events (or raw bytes) to one of the test's topics, keyed by symbol."""
    broker = make_broker(settings, "test")
    await broker.start()
    try:
        pending = [await broker.publish(e, settings.topic(topic), key=topics.symbol_key(getattr(e, "symbol", symbol)),
                                        no_confirm=True) for e in events]
        await asyncio.gather(*pending)
    finally:
        await broker.stop()


async def futures_rows(db: asyncpg.Connection, symbol: str = SYMBOL) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM futures WHERE symbol = $1 ORDER BY time", symbol)


def start_predictor(
    settings: Settings, log: Path, *, batch_size: int | None = None, metrics_port: int | None = None
) -> subprocess.Popen[bytes]:
    """`candlecast predictor` as its own process (as `candlecast up` runs it), on the test's topics and database."""
    env = {
        **os.environ,
        "CANDLECAST_KAFKA_BOOTSTRAP": settings.kafka,
        "CANDLECAST_DATABASE_URL": settings.database,
        "CANDLECAST_TOPIC_PREFIX": settings.topic_prefix,
        "CANDLECAST_MODEL_DIR": str(settings.model_dir),
        "CANDLECAST_PREDICTOR_METRICS_PORT": str(metrics_port or free_port()),
        "CANDLECAST_PREDICTOR_BATCH_SIZE": str(batch_size or settings.predictor_batch_size),
        "CANDLECAST_SYMBOLS": ",".join(settings.symbols),
    }
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "shared.cli", "predictor"], env=env, cwd=PROJECT_ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
