"""A burst on the real Kafka and Postgres: every symbol's candle closes at the same instant (as on
Binance), and the predictor handles them as one batch across streams."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import numpy as np

from services.predictor.handlers import group_id
from services.predictor.main import serve
from shared.config import Settings
from shared.messaging import topics
from shared.model.artifacts import load_model
from testkit.kafka import committed, read_topic
from testkit.models import make_champion
from testkit.waiting import eventually
from tests.services.predictor.support import INTERVAL, STEP, as_candles, candle_frame, publish, store_candles
from tests.support import running

SYMBOLS = [f"B{i:03d}USDT" for i in range(400)]


async def test_a_burst_of_400_symbols_yields_exactly_400_predictions(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path]
) -> None:
    settings = settings.model_copy(update={"symbols": SYMBOLS, "interval": INTERVAL, "intervals": [INTERVAL]})
    model = load_model(tiny_models[0])
    frames = {s: candle_frame(model.history_needed + 1, seed=i) for i, s in enumerate(SYMBOLS)}
    closing = []
    for symbol, frame in frames.items():
        await make_champion(db, tiny_models[0], symbol, INTERVAL)  # one artifact: one model in memory
        candles = as_candles(frame, symbol)
        await store_candles(db, candles[:-1])
        closing.append(candles[-1])

    async with running(serve, settings) as task:
        await publish(settings, topics.CANDLES, closing)

        async def consumed() -> bool:
            return await committed(settings, group_id(settings), topics.CANDLES) >= len(SYMBOLS)

        await eventually(consumed, "the burst to be consumed", task=task)

    closed_at = int(next(iter(frames.values()))["open_time"].iloc[-1])
    rows = await db.fetch("SELECT symbol, time, base_time, pred_close FROM futures ORDER BY symbol")
    assert [(r["symbol"], r["base_time"], r["time"]) for r in rows] == [(s, closed_at, closed_at + STEP)
                                                                         for s in SYMBOLS]
    events = [json.loads(r.value) for r in await read_topic(settings, topics.PREDICTIONS)]
    predictions = sorted((e["symbol"], e["target_time"], e["close"]) for e in events if e["kind"] == "prediction")
    assert [(s, t) for s, t, _ in predictions] == [(s, closed_at + STEP) for s in SYMBOLS]
    # Each stream's own prediction, as its history alone gives it (not a neighbour's in the stack).
    alone = [model.predict_next(frames[s]).close for s in SYMBOLS]
    assert np.array_equal([c for _, _, c in predictions], alone)
    assert np.array_equal([r["pred_close"] for r in rows], alone)
