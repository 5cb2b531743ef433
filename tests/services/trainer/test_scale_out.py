"""Two trainers share the streams: each stream is trained once, whichever trainer gets to it
(`services.trainer.locks`), and a restarting trainer leaves the other's run in progress alone.
One trainer asked for many streams at once runs a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import replace
from functools import partial

import asyncpg

from services.trainer import store
from services.trainer.locks import StreamLocks
from services.trainer.main import serve
from services.trainer.runner import Trainer
from services.trainer.scheduler import TrainingScheduler
from shared.config import Settings
from shared.market.streams import Stream
from shared.storage import create_pool
from shared.storage import models_registry as registry
from shared.storage.candle_store import mark_caught_up
from testkit.waiting import eventually
from tests.services.predictor.support import (
    INTERVAL,
    TINY,
    TRAIN_CANDLES,
    TRAIN_SEED,
    as_candles,
    candle_frame,
    store_candles,
)
from tests.support import running

SYMBOLS = ["AAAUSDT", "BBBUSDT"]
FAST = replace(TINY, epochs=1)


async def test_two_trainers_train_each_stream_once(settings: Settings, db: asyncpg.Connection,
                                                   worker: Executor) -> None:
    settings = settings.model_copy(update={"symbols": SYMBOLS, "train_min_candles": 1000, "ohlc_variant": False})
    for i, symbol in enumerate(SYMBOLS):
        frame = candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED + i)
        await store_candles(db, as_candles(frame, symbol))
        await mark_caught_up(db, symbol, INTERVAL, int(frame["open_time"].iloc[-1]))
    trainer = partial(serve, config=FAST, executor=worker, bootstrap_period=0.2)

    async def all_trained() -> bool:
        champions = [await registry.get_champion(db, s, INTERVAL) for s in SYMBOLS]
        running_rows = await db.fetchval("SELECT count(*) FROM job_logs WHERE status = 'running'")
        return all(champions) and running_rows == 0

    async with running(trainer, settings) as first, running(trainer, settings) as second:
        await eventually(all_trained, "every stream trained", within=240, task=first)
        assert not second.done()
    runs = await db.fetch("SELECT symbol, status FROM job_logs WHERE job_name = 'train' ORDER BY symbol")
    assert [(r["symbol"], r["status"]) for r in runs] == [(s, "success") for s in SYMBOLS]  # once each, not twice


async def test_a_starting_trainer_leaves_the_run_another_trainer_holds(settings: Settings,
                                                                        db: asyncpg.Connection) -> None:
    held, dead = Stream("AAAUSDT", INTERVAL), Stream("BBBUSDT", INTERVAL)
    ids = {}
    for stream in (held, dead):
        ids[stream] = await store.start_job(db, store.TRAIN, *stream, "reasons: drift")
    settings = settings.model_copy(update={"symbols": [held.symbol, dead.symbol]})
    other = StreamLocks(settings.database)  # the trainer still training `held`
    assert await other.try_lock(held)
    mine = StreamLocks(settings.database)
    try:
        assert not await mine.try_lock(held)  # across sessions, not only within one
        from services.trainer.scheduler import TrainingScheduler
        from services.trainer.triggers import Triggers

        requested: list[Stream] = []

        async def run(stream: Stream, reasons: list[str], requested_ms: int) -> None:
            requested.append(stream)

        scheduler = TrainingScheduler(run)
        resumed = await Triggers(settings, db, scheduler, mine).recover()  # type: ignore[arg-type]
        await scheduler.idle()
    finally:
        await mine.close()
        await other.close()
    assert resumed == [dead] and requested == [dead]
    statuses = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM job_logs")}
    assert statuses == {ids[held]: "running", ids[dead]: "failed"}


async def test_a_daily_tick_of_many_streams_runs_a_few_at_a_time(settings: Settings) -> None:
    """Every stream's tick arrives at the same instant; each run holds its stream's history in
    memory, so no more than `trainer_runs_at_once` go on at once, and every one of them runs."""

    class Counting(Trainer):
        now, most, ran = 0, 0, []

        async def _train(self, stream: Stream, reasons: Sequence[str]) -> str:
            Counting.now += 1
            Counting.most = max(Counting.most, Counting.now)
            await asyncio.sleep(0.05)
            Counting.now -= 1
            Counting.ran.append(stream.symbol)
            return "success"

    settings = settings.model_copy(update={"trainer_runs_at_once": 2})
    pool = await create_pool(settings.database)
    trainer = Counting(settings, pool, None, None)  # type: ignore[arg-type]  # no Kafka, no worker: _train is the test's
    symbols = [f"S{i:02d}USDT" for i in range(12)]
    scheduler = TrainingScheduler(trainer.run)
    try:
        for symbol in symbols:
            scheduler.request(Stream(symbol, INTERVAL), "daily tick")
        await asyncio.wait_for(scheduler.idle(), 30)
    finally:
        await trainer.locks.close()
        await pool.close()
    assert sorted(Counting.ran) == symbols
    assert Counting.most == 2
