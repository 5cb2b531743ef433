"""The trainer on the real Kafka and Postgres, training in its worker process (tiny models)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from dataclasses import replace
from functools import partial
from pathlib import Path

import asyncpg
import numpy as np

from services.trainer.handlers import group_id
from services.trainer.locks import StreamLocks
from services.trainer.main import serve
from services.trainer.metrics import PROMOTIONS, REJECTED
from services.trainer.runner import Trainer
from shared.config import Settings
from shared.market.streams import Stream
from shared.messaging import topics
from shared.messaging.events import DailyTick, DriftEvent, TrainRequest
from shared.messaging.runtime import make_broker
from shared.model.artifacts import load_model
from shared.storage import create_pool
from shared.storage import models_registry as registry
from shared.storage.candle_store import mark_caught_up
from testkit.kafka import committed, read_json, read_topic
from testkit.waiting import eventually
from tests.services.predictor.support import (
    BAD,
    INTERVAL,
    STEP,
    STREAM,
    SYMBOL,
    TINY,
    TRAIN_CANDLES,
    TRAIN_SEED,
    as_candles,
    candle_frame,
    make_champion,
    publish,
    store_candles,
)
from tests.support import running


async def _jobs(db: asyncpg.Connection, name: str = "train") -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM job_logs WHERE job_name = $1 ORDER BY id", name)


async def _finished(db: asyncpg.Connection, name: str, count: int = 1) -> bool:
    rows = await _jobs(db, name)
    return len(rows) >= count and all(r["status"] != "running" for r in rows)


async def test_the_first_model_is_trained_by_itself_promoted_announced_and_its_series_rebuilt(
    settings: Settings, db: asyncpg.Connection, worker: Executor
) -> None:
    settings = settings.model_copy(update={"train_min_candles": 1000})
    frame = candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED)
    await store_candles(db, as_candles(frame))
    await mark_caught_up(db, SYMBOL, INTERVAL, int(frame["open_time"].iloc[-1]))  # the backfill is recorded
    promotions = PROMOTIONS.labels(SYMBOL, INTERVAL)._value.get()
    async with running(partial(serve, config=TINY, executor=worker, bootstrap_period=0.2), settings) as task:
        await eventually(lambda: _finished(db, "rebuild-series"), "the series rebuild", within=120, task=task)

    [job] = await _jobs(db)
    assert job["status"] == "success" and job["symbol"] == SYMBOL and job["interval"] == INTERVAL
    assert "first model: 1500 candles stored" in job["message"] and "no champion to beat" in job["message"]
    assert job["finished_at"] is not None
    champion = await registry.get_champion(db, SYMBOL, INTERVAL)
    assert champion is not None and champion.version == job["model_version"]
    assert champion.metrics["compared_rows"] > 100 and "champion_close_mae" not in champion.metrics
    assert champion.metrics["close_mae"] < champion.baseline_metrics["persistence"]["close_mae"]  # it learned
    assert champion.data_start == frame["open_time"].iloc[0] and champion.data_end == frame["open_time"].iloc[-1]
    assert PROMOTIONS.labels(SYMBOL, INTERVAL)._value.get() == promotions + 1
    ohlc = champion.variants["ohlc"]  # trained beside it before it served, same kind and rows
    assert ohlc["kind"] == champion.kind and ohlc["features"] == "ohlc"
    assert await asyncio.to_thread(Path(ohlc["artifact_path"]).is_dir)
    assert ohlc["metrics"]["close_mae"] > 0 and "persistence" in ohlc["baseline_metrics"]

    [announced] = await read_json(settings, topics.MODELS)
    assert announced["version"] == champion.version and announced["artifact_path"] == champion.artifact_path
    assert announced["metrics"]["close_mae"] == champion.metrics["close_mae"]

    series = await db.fetch("SELECT * FROM series ORDER BY time")
    history = TINY.window + 48
    assert len(series) == TRAIN_CANDLES - history + 1  # every candle with a full history, once
    assert {r["model_version"] for r in series} == {champion.version}
    splits = [r["split"] for r in series]
    assert splits[0] == "train" and splits[-1] == "live" and splits.count("live") == 1
    assert "validation" in splits and "test" in splits
    assert splits == sorted(splits, key=["train", "validation", "test", "live"].index)  # in time order
    model = load_model(champion.artifact_path)
    expected = model.predict_many(frame, [1000])[0]
    row = next(r for r in series if r["time"] == expected.target_time)
    assert np.isclose(row["pred_close"], expected.close, rtol=1e-12)
    [rebuild] = await _jobs(db, "rebuild-series")
    assert rebuild["status"] == "success" and rebuild["model_version"] == champion.version


async def test_a_worse_candidate_is_rejected_and_the_champion_stays(
    settings: Settings, db: asyncpg.Connection, worker: Executor, tiny_models: list[Path]
) -> None:
    settings = settings.model_copy(update={"model_kinds": ["lstm"]})  # the BAD config is an LSTM's
    good = await make_champion(db, tiny_models[0])
    await store_candles(db, as_candles(candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED)))  # the data it learned on
    rejected = REJECTED.labels(SYMBOL, INTERVAL)._value.get()
    pool = await create_pool(settings.database)
    broker = make_broker(settings, "trainer")
    await broker.start()
    try:
        status = await Trainer(settings, pool, broker, worker, BAD).run(STREAM, ["a test"])
    finally:
        await broker.stop()
        await pool.close()

    assert status == "rejected"
    champion = await registry.get_champion(db, SYMBOL, INTERVAL)
    assert champion is not None and champion.version == good
    [job] = await _jobs(db)
    candidate = await registry.get_model(db, job["model_version"])
    assert candidate is not None and candidate.status == "rejected" and candidate.version != good
    assert candidate.metrics["close_mae"] > candidate.metrics["champion_close_mae"]  # same rows, both recorded
    assert job["status"] == "rejected" and f"champion {good} stays" in job["message"]
    assert f"vs champion {good}" in job["message"] and "persistence" in job["message"]
    assert await read_topic(settings, topics.MODELS) == []  # nothing announced
    assert await db.fetchval("SELECT count(*) FROM series") == 0  # no rebuild for a rejected model
    assert REJECTED.labels(SYMBOL, INTERVAL)._value.get() == rejected + 1


async def test_redelivered_stale_and_malformed_triggers_start_one_run_only(
    settings: Settings, db: asyncpg.Connection, worker: Executor, tiny_models: list[Path]
) -> None:
    version = await make_champion(db, tiny_models[0])
    frame = candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED)
    await store_candles(db, as_candles(frame))
    last = int(frame["open_time"].iloc[-1])
    fresh_tick = DailyTick(symbol=SYMBOL, interval=INTERVAL, day="2023-10-06", candle_time=last + STEP)
    old_tick = DailyTick(symbol=SYMBOL, interval=INTERVAL, day="2023-10-02", candle_time=last - 500 * STEP)
    drift = DriftEvent(symbol=SYMBOL, interval=INTERVAL, window=288, mape=1.0, persistence_mape=0.5, threshold=0.8,
                       reason="test", model_version=version)
    stale_drift = drift.model_copy(update={"model_version": "an-old-model"})
    await publish(settings, topics.TRAIN_REQUESTS, [TrainRequest(symbol=SYMBOL, interval=INTERVAL)] * 2)
    await publish(settings, topics.DRIFT, [drift, stale_drift])
    await publish(settings, topics.TICKS, [fresh_tick, old_tick, b'{"symbol": "BTCUSDT"}'])

    async with running(partial(serve, config=BAD, executor=worker), settings) as task:

        async def all_consumed() -> bool:
            return await committed(settings, group_id(settings), topics.TICKS) >= 3 and await committed(
                settings, group_id(settings), topics.TRAIN_REQUESTS) >= 2 and await committed(
                settings, group_id(settings), topics.DRIFT) >= 2

        await eventually(all_consumed, "the triggers to be consumed", task=task)
        await eventually(lambda: _finished(db, "train"), "the run", within=120, task=task)
        await asyncio.sleep(1)  # room for a wrongly scheduled second run to show up
    runs = await _jobs(db)
    assert len(runs) == 1, [r["message"] for r in runs]
    [letter] = await read_json(settings, topics.DEAD_LETTER)
    assert letter["service"] == "trainer" and "interval" in letter["reason"]


async def test_runs_interrupted_by_a_crash_are_done_again_after_a_restart(
    settings: Settings, db: asyncpg.Connection, worker: Executor, tiny_models: list[Path]
) -> None:
    """A training left `running` is run again; a champion whose series was not rebuilt gets it."""
    version = await make_champion(db, tiny_models[0])
    await store_candles(db, as_candles(candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED)))
    crashed = await db.fetchval(
        "INSERT INTO job_logs (job_name, status, message, symbol, interval) "
        "VALUES ('train', 'running', 'reasons: drift', $1, $2) RETURNING id", SYMBOL, INTERVAL)
    await db.execute("INSERT INTO job_logs (job_name, status, message, symbol, interval) "
                     "VALUES ('rebuild-series', 'running', $3, $1, $2)", SYMBOL, INTERVAL, version)

    async def settled() -> bool:  # the resumed run, and the rebuild of what it promotes if it does
        if not await _finished(db, "train", 2):
            return False
        promoted = (await _jobs(db))[1]["status"] == "success"
        return await _finished(db, "rebuild-series", 3 if promoted else 2)

    async with running(partial(serve, config=BAD, executor=worker), settings) as task:
        await eventually(settled, "the resumed run", within=120, task=task)
    old, new = await _jobs(db)
    assert old["id"] == crashed and old["status"] == "failed" and "interrupted" in old["message"]
    assert "resuming a run interrupted by a restart" in new["message"] and new["status"] in ("success", "rejected")
    rebuilds = await _jobs(db, "rebuild-series")
    assert rebuilds[0]["status"] == "failed" and rebuilds[1]["status"] == "success"
    assert rebuilds[1]["model_version"] == version and int(rebuilds[1]["message"].split()[0]) > 1000
    # The resumed run may beat the tiny champion by chance; then its own series replaces the rebuilt one.
    champion = await registry.get_champion(db, SYMBOL, INTERVAL)
    assert champion is not None
    assert champion.version == (new["model_version"] if new["status"] == "success" else version)
    assert await db.fetchval("SELECT count(*) FROM series WHERE model_version = $1", champion.version) > 1000


async def test_the_first_model_waits_until_the_backfill_is_recorded(settings: Settings, db: asyncpg.Connection) -> None:
    """Enough candles but a backfill still running (the ingestor is further ahead, or has not said
    where it got to) is no reason to train: the first model would know the first days only."""
    from services.trainer.scheduler import TrainingScheduler
    from services.trainer.triggers import Triggers

    settings = settings.model_copy(update={"train_min_candles": 1000})  # 1500 candles: 5 days of 90
    frame = candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED)
    await store_candles(db, as_candles(frame[:1200]))
    requested: list[list[str]] = []

    async def run(symbol: Stream, reason: list[str], requested_ms: int) -> None:
        requested.append(reason)

    scheduler = TrainingScheduler(run)
    locks = StreamLocks(settings.database)
    triggers = Triggers(settings, db, scheduler, locks)  # type: ignore[arg-type]
    try:
        assert not await triggers.bootstrap_one(STREAM)  # no word from the ingestor
        await mark_caught_up(db, SYMBOL, INTERVAL, int(frame["open_time"].iloc[-1]))
        assert not await triggers.bootstrap_one(STREAM)  # the recorder is 300 candles behind the ingestor
        await store_candles(db, as_candles(frame[1200:]))
        assert await triggers.bootstrap_one(STREAM)
        # An import of a whole configured history needs no word from the ingestor.
        longer = settings.model_copy(update={"train_days": 5})
        await db.execute("DELETE FROM ingest_progress")
        assert await Triggers(longer, db, TrainingScheduler(run), locks).bootstrap_one(STREAM)  # type: ignore[arg-type]
    finally:
        await scheduler.close()
        await locks.close()


async def test_every_configured_kind_trains_and_the_best_on_the_same_rows_is_promoted(
    settings: Settings, db: asyncpg.Connection, worker: Executor
) -> None:
    """lstm, gbm and linear in one run; one kind failing (a gbm that cannot train) blocks nothing."""
    settings = settings.model_copy(update={"model_kinds": ["lstm", "gbm", "linear"]})
    await store_candles(db, as_candles(candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED)))
    pool = await create_pool(settings.database)
    broker = make_broker(settings, "trainer")
    await broker.start()
    try:
        status = await Trainer(settings, pool, broker, worker, TINY).run(STREAM, ["all kinds"])
        broken = replace(TINY, gbm_min_data_in_leaf=-1)  # LightGBM refuses it: the gbm kind fails
        second = await Trainer(settings, pool, broker, worker, broken).run(STREAM, ["one kind broken"])
    finally:
        await broker.stop()
        await pool.close()
    assert status == "success" and second in ("success", "rejected")
    first, last = await _jobs(db)
    rows = await db.fetch("SELECT version, kind, status, metrics FROM models ORDER BY created_at, version")
    assert sorted(r["kind"] for r in rows) == ["gbm", "linear", "linear", "lstm", "lstm"]
    first_run = rows[:3]  # the first run's three models, one per kind
    assert sorted(r["kind"] for r in first_run) == ["gbm", "linear", "lstm"]
    maes = {r["kind"]: json.loads(r["metrics"])["close_mae"] for r in first_run}
    winner = next(r for r in rows if r["version"] == first["model_version"])
    assert maes[winner["kind"]] == min(maes.values())  # the best kind on the same rows won
    assert all(kind in first["message"] for kind in ("lstm", "gbm", "linear"))
    assert "gbm failed" in last["message"] and "lstm" in last["message"] and "linear" in last["message"]


async def test_with_live_evidence_required_a_better_candidate_waits_in_the_shadow_then_wins(
    settings: Settings, db: asyncpg.Connection, worker: Executor, tmp_path: Path
) -> None:
    from shared.model.artifacts import save_model
    from shared.model.training import train

    settings = settings.model_copy(update={"model_kinds": ["lstm"], "promote_requires_live": 5})
    frame = candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED)
    weak = save_model(train("lstm", frame, BAD), settings.model_dir, SYMBOL, INTERVAL)  # learned nothing
    champion = await make_champion(db, weak)
    await store_candles(db, as_candles(frame))
    pool = await create_pool(settings.database)
    broker = make_broker(settings, "trainer")
    await broker.start()
    try:
        trainer = Trainer(settings, pool, broker, worker, TINY)
        assert await trainer.run(STREAM, ["a better model"]) == "pending"
        [job] = await _jobs(db)
        candidate = job["model_version"]
        assert job["status"] == "pending" and "live candles decide" in job["message"]
        assert (await registry.get_champion(db, SYMBOL, INTERVAL)).version == champion  # type: ignore[union-attr]
        assert candidate in [m.version for m in await registry.latest_challengers(db, SYMBOL, INTERVAL)]

        async def live(version: str, table: str, error: float, times: range) -> None:
            for t in times:
                await db.execute(
                    f"""INSERT INTO {table} (symbol, interval, time, base_time, pred_open, pred_high, pred_low,
                                            pred_close, pred_amplitude, p_up, base_close, real_open, real_close,
                                            model_version)
                        VALUES ($1, $2, $3::bigint, $3::bigint - $4::bigint, 100, 101, 99, $5, 0.02, 0.5, 100, 100,
                                100, $6)""",
                    SYMBOL, INTERVAL, t, STEP, 100 + error, version)

        start = int(frame["open_time"].iloc[-1]) + STEP
        await live(champion, "futures", 2.0, range(start, start + 4 * STEP, STEP))
        await live(candidate, "shadow_futures", 1.0, range(start, start + 4 * STEP, STEP))
        assert await trainer.check_live(STREAM) == []  # four candles: not enough evidence yet
        await live(champion, "futures", 2.0, range(start + 4 * STEP, start + 6 * STEP, STEP))
        await live(candidate, "shadow_futures", 1.0, range(start + 4 * STEP, start + 6 * STEP, STEP))
        [verdict] = await trainer.check_live(STREAM)
    finally:
        await broker.stop()
        await pool.close()
    assert "promoted on live evidence" in verdict and "on the last 6 candles" in verdict
    assert (await registry.get_champion(db, SYMBOL, INTERVAL)).version == candidate  # type: ignore[union-attr]
    announced = await read_json(settings, topics.MODELS)
    assert [a["version"] for a in announced] == [candidate]


async def test_the_series_reads_the_store_again_unless_the_runs_candles_are_all_of_it(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """The rebuild after a promotion reuses the run's candles only when they are every stored
    candle; one recorded since (or older history than the training's) is read from the store."""
    frame = candle_frame(300, seed=TRAIN_SEED)
    await store_candles(db, as_candles(frame.iloc[:299], SYMBOL))
    pool = await create_pool(settings.database)
    trainer = Trainer(settings, pool, None, None)  # type: ignore[arg-type]  # neither Kafka nor the worker is used
    try:
        loaded = frame.iloc[:299].reset_index(drop=True)
        assert await trainer._stored_candles(STREAM, loaded) is loaded
        await store_candles(db, as_candles(frame.iloc[299:], SYMBOL))  # recorded after the run loaded its own
        again = await trainer._stored_candles(STREAM, loaded)
        assert again is not loaded and again["open_time"].tolist() == frame["open_time"].tolist()
        assert (await trainer._stored_candles(STREAM, loaded.iloc[1:].reset_index(drop=True)))["open_time"].tolist() \
            == frame["open_time"].tolist()
    finally:
        await trainer.locks.close()
        await pool.close()
