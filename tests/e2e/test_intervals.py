"""Three intervals through the whole loop: the stand-in serves 5m, 1h and 1d (aggregated from its 5m
data), and each stream backfills its own history, gets its own champion, predicts and fills its
futures; the predictor restarted midway leaves no hole and no duplicate in any stream."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial

import asyncpg
import pytest

from services.ingestor.binance import Backoff
from services.ingestor.main import serve as ingestor_serve
from services.ingestor.options import IngestOptions
from services.predictor.main import serve as predictor_serve
from services.sim.market import Market
from services.sim.server import BinanceSim
from services.trainer.main import serve as trainer_serve
from shared.config import Settings, interval_ms
from shared.messaging import topics
from shared.storage import models_registry as registry
from testkit.invariants import check_invariants
from testkit.kafka import read_json
from testkit.waiting import eventually
from tests.services.predictor.support import SYMBOL, TINY
from tests.support import running

DAY_MS = 86_400_000
SPEED = 8000.0  # a 5m candle every 37.5 ms, an hour every 0.45 s, a day every 10.8 s
INTERVALS = ("5m", "1h", "1d")


async def filled(db: asyncpg.Connection, interval: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM futures WHERE symbol = $1 AND interval = $2 "
                                 "AND real_close IS NOT NULL", SYMBOL, interval))


@pytest.mark.slow
async def test_each_interval_backfills_trains_predicts_and_fills_through_a_predictor_restart(
    settings: Settings, db: asyncpg.Connection, worker: Executor
) -> None:
    market = Market.generated([SYMBOL], "5m", days=230, seed=31)
    fast = IngestOptions(backoff=Backoff(base=0.05, cap=0.5), idle_timeout=15.0)
    async with BinanceSim(market, speed=SPEED, start_ms=market.start_ms + 200 * DAY_MS + 1000) as sim:
        settings = settings.model_copy(update={
            "binance_rest_url": sim.rest_url, "binance_ws_url": sim.ws_url, "symbols": [SYMBOL],
            "intervals": list(INTERVALS), "interval": "5m", "history_candles": {"5m": 864, "1h": 240, "1d": 0},
            "train_min_candles": 150, "model_kinds": ["linear"], "drift_mape_threshold": 100.0,
        })
        async with (
            running(partial(ingestor_serve, options=fast), settings) as ingestor,
            running(partial(trainer_serve, config=TINY, executor=worker, bootstrap_period=0.5), settings) as trainer,
        ):
            async def every_stream_filled(at_least: dict[str, int]) -> bool:
                for task in (ingestor, trainer):
                    if task.done():
                        task.result()
                return all([await filled(db, i) >= at_least[i] for i in INTERVALS])

            async with running(predictor_serve, settings) as predictor:
                await eventually(lambda: every_stream_filled(dict.fromkeys(INTERVALS, 2)),
                                 "each stream's predictions filled", within=150, task=predictor)
            before = {i: await filled(db, i) for i in INTERVALS}
            await asyncio.sleep(1.5)  # candles of every interval close while the predictor is down
            async with running(predictor_serve, settings) as predictor:
                await eventually(lambda: every_stream_filled({i: before[i] + 2 for i in INTERVALS}),
                                 "each stream predicting again after the restart", within=90, task=predictor)

    predictions = await read_json(settings, topics.PREDICTIONS)
    for interval in INTERVALS:
        step = interval_ms(interval)
        champion = await registry.get_champion(db, SYMBOL, interval)
        assert champion is not None and champion.kind == "linear", interval
        assert champion.version.startswith(f"{SYMBOL}-{interval}-") and "ohlc" in champion.variants
        times = [r["time"] for r in await db.fetch(
            "SELECT time FROM futures WHERE symbol = $1 AND interval = $2 ORDER BY time", SYMBOL, interval)]
        assert times == list(range(times[0], times[-1] + step, step)), interval  # no hole, no duplicate
        last_stored = await db.fetchval("SELECT max(open_time) FROM candles WHERE symbol = $1 AND interval = $2",
                                        SYMBOL, interval)
        report = await check_invariants(db, SYMBOL, interval, step, times[0], min(times[-1], last_stored), 0)
        assert report.ok, f"{interval}: {report}"
        published = [p for p in predictions if p["interval"] == interval and p["kind"] == "prediction"]
        assert published, interval
    first_day = await db.fetchval("SELECT min(open_time) FROM candles WHERE interval = '1d'")
    assert first_day == market.start_ms  # 1d backfilled everything the stand-in has
