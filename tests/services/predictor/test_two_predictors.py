"""Two predictors in one consumer group share 50 streams; one is killed (SIGKILL, mid-stream) and
started again: no hole and no duplicate in any stream, every prediction the model's own, and both
instances predicted. No recorder runs: a predictor needs nothing from another consumer to rebuild
its history after a restart or a rebalance."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import asyncpg
import numpy as np

from services.predictor.handlers import group_id
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Candle
from shared.model.artifacts import load_model
from testkit.invariants import check_invariants
from testkit.kafka import committed, delete_topics
from testkit.metrics import metric
from testkit.models import make_champion
from testkit.ports import free_port
from testkit.waiting import eventually
from tests.services.predictor.support import (
    INTERVAL,
    STEP,
    as_candles,
    candle_frame,
    publish,
    start_predictor,
    store_candles,
)

SYMBOLS = [f"P{i:02d}USDT" for i in range(50)]
HISTORY, LIVE = 60, 40


async def test_two_predictors_share_50_streams_and_a_restart_of_one_leaves_no_hole_or_duplicate(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path], tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"symbols": SYMBOLS, "topic_prefix": f"t{uuid.uuid4().hex[:10]}-",
                                           "kafka_partitions": 6})
    await topics.ensure_topics(settings)
    streams: dict[str, list[Candle]] = {}
    for i, symbol in enumerate(SYMBOLS):
        await make_champion(db, tiny_models[0], symbol, INTERVAL)
        candles = as_candles(candle_frame(HISTORY + LIVE, seed=100 + i), symbol)
        await store_candles(db, candles[:HISTORY])
        streams[symbol] = candles[HISTORY:]
    # Candle by candle, every symbol's close at each step together (as the exchange closes them).
    steps = [[streams[s][k] for s in SYMBOLS] for k in range(LIVE)]
    total = LIVE * len(SYMBOLS)
    ports = [free_port(), free_port(), free_port()]
    log = tmp_path / "predictors.log"

    async def consumed(n: int) -> bool:
        return await committed(settings, group_id(settings), topics.CANDLES) >= n

    first = start_predictor(settings, log, batch_size=100, metrics_port=ports[0])
    second = start_predictor(settings, log, batch_size=100, metrics_port=ports[1])
    restarted = None
    try:
        for step in steps[:10]:
            await publish(settings, topics.CANDLES, step)
        await eventually(lambda: consumed(10 * len(SYMBOLS)), "the first steps", within=120)

        async def feed() -> None:
            for step in steps[10:]:
                await publish(settings, topics.CANDLES, step)
                await asyncio.sleep(0.3)

        feeding = asyncio.create_task(feed())

        async def both_predicted_and_more_consumed() -> bool:
            shares = [await metric(port, "candlecast_predictions_total") for port in ports[:2]]
            return all(shares) and await consumed(15 * len(SYMBOLS))

        await eventually(both_predicted_and_more_consumed, "both predictors at work, mid-stream")
        first.send_signal(signal.SIGKILL)  # whatever it had in flight is lost
        assert first.wait(30) == -signal.SIGKILL
        assert await committed(settings, group_id(settings), topics.CANDLES) < total, "the kill came too late"
        restarted = start_predictor(settings, log, batch_size=100, metrics_port=ports[2])
        await feeding
        await eventually(lambda: consumed(total), "every candle", within=120)
    finally:
        for process in (first, second, restarted):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)
        await delete_topics(settings)

    model = load_model(tiny_models[0])
    for i, symbol in enumerate(SYMBOLS):
        live = streams[symbol]
        rows = await db.fetch("SELECT time, pred_close, real_close FROM futures WHERE symbol = $1 ORDER BY time",
                              symbol)
        assert [r["time"] for r in rows] == [c.open_time + STEP for c in live], symbol  # t+1 for each t
        assert all(r["real_close"] is not None for r in rows[:-1]) and rows[-1]["real_close"] is None
        expected = model.predict_many(candle_frame(HISTORY + LIVE, seed=100 + i), list(range(HISTORY, HISTORY + LIVE)))
        assert np.allclose([r["pred_close"] for r in rows], [p.close for p in expected], rtol=1e-12), symbol
        report = await check_invariants(db, symbol, INTERVAL, STEP, live[0].open_time - HISTORY * STEP,
                                        live[-1].open_time, HISTORY + 1)
        assert report.ok, f"{symbol}: {report}"
    # The history the restarted predictor read back is its own writes (no recorder ran).
    assert await db.fetchval("SELECT count(*) FROM candles") == len(SYMBOLS) * (HISTORY + LIVE)
