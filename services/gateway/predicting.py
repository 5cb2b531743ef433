"""The champion model inside the gateway, for `POST /predict`.

Loading a saved model costs seconds (TensorFlow import, Keras deserialisation); a prediction
costs about a millisecond (NumPy fast path). So the loaded champion is kept and reloaded only
when the `models` table names a different one. TensorFlow is imported on the first prediction,
not at start-up: a gateway that only serves reads never pays for it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
from pydantic import BaseModel, Field

from services.gateway import queries

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """No model can answer (none trained yet, or its files are missing): a 503, with why."""


class PredictedCandle(BaseModel):
    time: int = Field(description="open time of the predicted candle (epoch ms)")
    open: float
    high: float
    low: float
    close: float
    amplitude: float = Field(description="(high - low) / open")
    p_up: float = Field(description="probability that close > open")


class PredictResponse(BaseModel):
    symbol: str
    interval: str
    model_version: str
    base_time: int = Field(description="open time of the last candle of the history")
    base_close: float
    next: PredictedCandle
    steps: list[PredictedCandle] = Field(description="`horizon` candles; steps after the first see earlier predictions")


class ModelStore:
    """The loaded champion per symbol, reloaded when a new one is promoted."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._loaded: dict[str, tuple[str, Any]] = {}  # symbol -> (version, LoadedModel)
        self._lock = asyncio.Lock()

    def _resolve(self, artifact_path: str) -> Path:
        path = Path(artifact_path)
        return path if path.is_absolute() else self.model_dir / path

    async def champion(self, pool: asyncpg.Pool, symbol: str, interval: str) -> Any:
        row = await queries.champion(pool, symbol, interval)
        if row is None:
            raise ModelUnavailable(
                f"no model for {symbol} {interval} yet: train one (POST /train or `candlecast train`)"
            )
        version = row["version"]
        cached = self._loaded.get(symbol)
        if cached and cached[0] == version:
            return cached[1]
        async with self._lock:
            cached = self._loaded.get(symbol)
            if cached and cached[0] == version:
                return cached[1]
            path = self._resolve(row["artifact_path"])
            if not path.exists():
                raise ModelUnavailable(f"model {version} is registered but its files are missing ({path})")
            loaded = await asyncio.to_thread(_load, path)
            self._loaded[symbol] = (version, loaded)
            log.info("loaded model %s for %s from %s", version, symbol, path)
            return loaded


def _load(path: Path) -> Any:
    try:
        from shared.model.artifacts import load_model
    except ImportError as exc:  # the model package is missing from this install
        raise ModelUnavailable(f"model code not available: {exc}") from exc
    try:
        return load_model(path)
    except Exception as exc:  # a broken artifact: the predictor keeps serving, this endpoint says why
        raise ModelUnavailable(f"model at {path} cannot be loaded: {exc}") from exc


def _candle(step: Any) -> PredictedCandle:
    return PredictedCandle(
        time=step.target_time,
        open=step.open,
        high=step.high,
        low=step.low,
        close=step.close,
        amplitude=step.amplitude,
        p_up=min(1.0, max(0.0, step.p_up)),
    )


def predict(loaded: Any, history: pd.DataFrame, horizon: int) -> tuple[list[PredictedCandle], Any]:
    """`horizon` candles after the history; returns them and the first raw `NextCandle`.

    Each predicted candle is appended as if it had happened, with the volumes of the last real
    candle: the features read volumes only as ratios to their rolling mean, so carrying the
    last one forward says "nothing unusual" rather than inventing a surge or a drought.
    """
    need = int(loaded.history_needed)
    frame = history.iloc[-need:].reset_index(drop=True)
    last = frame.iloc[-1]
    interval_ms = int(loaded.interval_ms)
    steps: list[PredictedCandle] = []
    first = None
    for _ in range(horizon):
        nxt = loaded.predict_next(frame)
        if first is None:
            first = nxt
        steps.append(_candle(nxt))
        fed_back = {
            **{name: last[name] for name in frame.columns},
            "open_time": nxt.target_time,
            "close_time": nxt.target_time + interval_ms - 1,
            "open": nxt.open,
            "high": nxt.high,
            "low": nxt.low,
            "close": nxt.close,
        }
        frame = pd.concat([frame.iloc[1:], pd.DataFrame([fed_back]).astype(frame.dtypes)], ignore_index=True)
    return steps, first
