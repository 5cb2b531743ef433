"""Fault 3: each service killed with SIGKILL at a random moment under load, then started again.

The whole pipeline runs as real processes on the live stand-in (2 candles a second, a backfill
at the start, a training in progress). Each service is killed in turn, at a random moment (the
seed is in the failure message) and restarted; afterwards no candle and no prediction is
missing or doubled, and the `models` table is as it was: one champion, the one in service.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import httpx

from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import TrainRequest
from testkit.kafka import publish_raw
from testkit.waiting import eventually
from tests.faults.conftest import Spawn
from tests.faults.support import SYMBOL, against, binance, champion, settled, sim_now, topic_duplicates

SLOW_TRAINING = {"window": 12, "units": 16, "epochs": 500, "patience": 500, "batch_size": 8}


async def _count(db: asyncpg.Connection, sql: str) -> int:
    return int(await db.fetchval(sql))


async def test_every_service_killed_at_a_random_moment_loses_and_doubles_nothing(
    settings: Settings, spawn: Spawn, db: asyncpg.Connection, tiny_model_5m: Path
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    async with binance() as sim:
        config = against(settings, sim, train_config=SLOW_TRAINING, train_min_candles=1_000_000)
        version = await champion(config, tiny_model_5m)
        processes = {name: spawn(name, config) for name in ("ingestor", "predictor", "trainer", "gateway")}
        for process in processes.values():
            process.start()
        watch = list(processes.values())
        await publish_raw(config, topics.TRAIN_REQUESTS,
                          [TrainRequest(symbol=SYMBOL, interval="5m", reason="load").model_dump_json().encode()],
                          key=SYMBOL.encode())
        training = "SELECT count(*) FROM job_logs WHERE job_name = 'train' AND status = 'running'"
        await eventually(lambda: _count(db, training), "a training run under way", within=90, watch=watch)

        order = list(processes)
        rng.shuffle(order)
        for name in order:
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            processes[name].kill()
            await asyncio.sleep(rng.uniform(0.2, 2.0))
            await processes[name].started()

        try:
            final = await settled(db, until=await sim_now(sim) + 10 * 300_000, within=150, watch=watch)
        except AssertionError as exc:
            raise AssertionError(f"kill order {order}, seed {seed}: {exc}") from None
        assert final.futures_expected > 0
        assert await topic_duplicates(config) == [], f"seed {seed}"

        # The models table: the champion is still the one in service, alone; the killed run was
        # closed as failed when the trainer came back, and at most its re-run is still going.
        models = await db.fetch("SELECT version, status FROM models")
        assert [(r["version"], r["status"]) for r in models] == [(version, "champion")]
        # The restarted trainer closes it at start-up, which may come after the data has settled.
        first_run = "SELECT count(*) FROM job_logs WHERE id = (SELECT min(id) FROM job_logs WHERE job_name = 'train')" \
            " AND status <> 'running'"
        await eventually(lambda: _count(db, first_run), "the killed run closed by the restarted trainer",
                         within=90, watch=watch)
        runs = await db.fetch("SELECT status, message FROM job_logs WHERE job_name = 'train' ORDER BY id")
        assert runs[0]["status"] == "failed" and "interrupted" in runs[0]["message"], runs
        assert sum(r["status"] == "running" for r in runs) <= 1, runs
        async with httpx.AsyncClient(timeout=30) as http:
            current = await http.get(f"http://127.0.0.1:{processes['gateway'].port}/models/current")
        assert current.json()["version"] == version
        served = await db.fetch("SELECT DISTINCT model_version FROM futures")
        assert [r["model_version"] for r in served] == [version]
