"""Fault 5: the training crashes half-way (its worker process dies, as in an OOM kill).

The run is recorded as failed with the reason, and the champion stays in service: the table
still names it, the gateway serves it, the predictor keeps predicting with it. (The trainer
process itself killed mid-training is part of fault 3.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import psutil

from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import TrainRequest
from shared.storage.candle_store import upsert_candles
from testkit.kafka import publish_raw
from testkit.services import ServiceProcess
from testkit.waiting import eventually
from tests.faults.conftest import Spawn
from tests.faults.support import SYMBOL, against, backlog, binance, champion, settled, sim_now

SLOW_TRAINING = {"window": 12, "units": 16, "epochs": 500, "patience": 500, "batch_size": 8}


def _worker(trainer: ServiceProcess) -> psutil.Process | None:
    for child in trainer.children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


async def _ask(config: Settings, reason: str) -> None:
    request = TrainRequest(symbol=SYMBOL, interval="5m", reason=reason)
    await publish_raw(config, topics.TRAIN_REQUESTS, [request.model_dump_json().encode()], key=SYMBOL.encode())


async def _running_run(db: asyncpg.Connection) -> int | None:
    run: int | None = await db.fetchval("SELECT min(id) FROM job_logs WHERE job_name = 'train' AND status = 'running'")
    return run


def _has_worker(trainer: ServiceProcess) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return _worker(trainer) is not None

    return check


async def _crash_a_training(
    config: Settings, trainer: ServiceProcess, db: asyncpg.Connection, watch: list[ServiceProcess]
) -> asyncpg.Record:
    """Ask for a training, kill its worker half-way; returns the run's `job_logs` row once closed."""
    await _ask(config, "to be crashed")  # or a daily tick of the live candles was first: either will do
    await eventually(lambda: _running_run(db), "a training under way", within=90, watch=watch)
    run = await _running_run(db)
    await eventually(_has_worker(trainer), "the training worker", within=30, watch=watch)
    await asyncio.sleep(4)  # into the work
    worker = _worker(trainer)
    assert worker is not None
    worker.kill()

    async def closed() -> bool:
        return await db.fetchval("SELECT status <> 'running' FROM job_logs WHERE id = $1", run)  # type: ignore[no-any-return]

    await eventually(closed, "the crashed run closed", within=30, watch=watch)
    row = await db.fetchrow("SELECT status, message FROM job_logs WHERE id = $1", run)
    assert row is not None
    return row


async def test_a_crashed_training_leaves_a_failed_run_and_the_champion_in_service(
    settings: Settings, spawn: Spawn, db: asyncpg.Connection, tiny_model_5m: Path
) -> None:
    async with binance() as sim:
        config = against(settings, sim, train_config=SLOW_TRAINING, train_min_candles=1_000_000)
        version = await champion(config, tiny_model_5m)
        ingestor = await spawn("ingestor", config).started()
        predictor = await spawn("predictor", config).started()
        trainer = await spawn("trainer", config).started()
        gateway = await spawn("gateway", config).started()
        watch = [ingestor, predictor, trainer, gateway]
        await settled(db, until=await sim_now(sim), within=90, watch=watch)

        crashed = await _crash_a_training(config, trainer, db, watch)
        assert crashed["status"] == "failed"
        assert "BrokenProcessPool" in crashed["message"], crashed["message"]

        crashed_at = await sim_now(sim)
        final = await settled(db, until=crashed_at + 10 * 300_000, within=60, watch=watch)
        assert final.ok
        after = await db.fetch("SELECT DISTINCT model_version FROM futures WHERE time > $1", crashed_at)
        assert [r["model_version"] for r in after] == [version]  # still predicting, with the champion
        assert [tuple(r) for r in await db.fetch("SELECT version, status FROM models")] == [(version, "champion")]
        async with httpx.AsyncClient(timeout=30) as http:
            current = await http.get(f"http://127.0.0.1:{gateway.port}/models/current")
        assert current.json()["version"] == version


async def test_the_trainer_trains_again_after_a_crashed_training(
    settings: Settings, spawn: Spawn, db: asyncpg.Connection, tiny_model_5m: Path
) -> None:
    config = settings.model_copy(update={"train_config": SLOW_TRAINING, "train_min_candles": 1_000_000})
    await upsert_candles(db, backlog(SYMBOL, 3000))
    await champion(config, tiny_model_5m)
    trainer = await spawn("trainer", config).started()
    await _crash_a_training(config, trainer, db, [trainer])

    await _ask(config, "after the crash")

    async def new_run() -> asyncpg.Record | None:
        return await db.fetchrow("SELECT status, message FROM job_logs WHERE message LIKE '%after the crash%'")

    await eventually(new_run, "a run for the request after the crash", within=30, watch=[trainer])
    await asyncio.sleep(3)  # a broken pool fails the run at once; a working one is still training
    run = await new_run()
    assert run is not None and run["status"] == "running", run
