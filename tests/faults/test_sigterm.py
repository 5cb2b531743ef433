"""Fault 7: SIGTERM under load. The batch in flight finishes, its offsets are committed, exit code 0.

"Finished and committed" is checked exactly, against the group's committed offset C on the
one-partition `candles` topic: every candle before C was handled, none from C on was.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import websockets

from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import TrainRequest
from shared.storage.candle_store import upsert_candles
from shared.storage.models_registry import get_champion
from testkit.kafka import committed, end_offsets, publish_raw
from testkit.models import make_champion
from testkit.services import ServiceProcess
from testkit.waiting import eventually
from tests.faults.conftest import Spawn
from tests.faults.support import (
    HISTORY,
    SYMBOL,
    against,
    backlog,
    binance,
    champion,
    offsets_of,
    publish_candles,
)

LOAD = "LOADUSDT"


async def _count(db: asyncpg.Connection, sql: str, *args: object) -> int:
    return int(await db.fetchval(sql, *args))


async def test_the_recorder_finishes_its_batch_and_commits_on_sigterm(
    settings: Settings, spawn: Spawn, db: asyncpg.Connection
) -> None:
    candles = backlog(LOAD, 30_000)
    await publish_candles(settings, candles)
    async with binance() as sim:
        ingestor = await spawn("ingestor", against(settings, sim)).started()
        await eventually(lambda: _count(db, "SELECT count(*) > 0 FROM candles WHERE symbol = $1", LOAD),
                         "the recorder at work on the backlog", within=60, watch=[ingestor])
        assert await ingestor.terminate() == 0, ingestor.tail()

    topic = settings.topic(topics.CANDLES)
    done = await committed(settings, f"{settings.topic_prefix}candlecast-recorder", topics.CANDLES)
    assert done > 0
    stored = {r["open_time"] for r in await db.fetch("SELECT open_time FROM candles WHERE symbol = $1", LOAD)}
    offsets = await offsets_of(settings, LOAD)
    assert {t for o, t in offsets.items() if o < done} <= stored, "committed but not stored"
    assert not {t for o, t in offsets.items() if o >= done} & stored, "stored beyond the committed offset"
    assert done < (await end_offsets(settings.kafka, topic))[0] or len(stored) == len(candles)


async def test_the_predictor_finishes_its_batch_and_commits_on_sigterm(
    settings: Settings, spawn: Spawn, db: asyncpg.Connection, tiny_model_5m: Path
) -> None:
    config = settings.model_copy(update={"symbols": [LOAD], "predictor_batch_size": 250})
    candles = backlog(LOAD, 20_000)
    await upsert_candles(db, candles)  # as the recorder would have
    await make_champion(db, tiny_model_5m, LOAD, "5m")
    await publish_candles(config, candles)
    predictor = await spawn("predictor", config).started()
    await eventually(lambda: _count(db, "SELECT count(*) > 0 FROM futures WHERE symbol = $1", LOAD),
                     "the predictor at work on the backlog", within=90, watch=[predictor])
    assert await predictor.terminate() == 0, predictor.tail()

    done = await committed(config, f"{config.topic_prefix}candlecast-predictor", topics.CANDLES)
    times = [c.open_time for c in candles]  # offsets 0.. in order: the topic held nothing else
    predicted = sorted(r["base_time"] for r in await db.fetch("SELECT base_time FROM futures WHERE symbol = $1", LOAD))
    # Every candle before the committed offset (with a full history) was predicted; none after.
    assert predicted == times[HISTORY - 1 : done], (len(predicted), done)


SLOW_TRAINING = {"window": 12, "units": 16, "epochs": 500, "patience": 500, "batch_size": 8}


async def _trainer_stopped_mid_training(
    settings: Settings, spawn: Spawn, db: asyncpg.Connection, model: Path
) -> tuple[Settings, ServiceProcess, str]:
    """A trainer told to train (slowly), stopped with SIGTERM while its worker trains."""
    config = settings.model_copy(update={"train_config": SLOW_TRAINING, "train_min_candles": 1_000_000})
    await upsert_candles(db, backlog(SYMBOL, 3000))
    version = await champion(config, model)
    trainer = await spawn("trainer", config).started()
    request = TrainRequest(symbol=SYMBOL, interval="5m", reason="stopped mid-way")
    await publish_raw(config, topics.TRAIN_REQUESTS, [request.model_dump_json().encode()], key=SYMBOL.encode())

    async def training() -> bool:
        running = await _count(db, "SELECT count(*) FROM job_logs WHERE job_name = 'train' AND status = 'running'")
        return running > 0 and any("spawn_main" in " ".join(p.cmdline()) for p in trainer.children())

    await eventually(training, "a training run in the worker", within=90, watch=[trainer])
    await asyncio.sleep(3)  # inside the epochs, not at their start
    assert await trainer.terminate() == 0, trainer.tail()
    return config, trainer, version


async def test_the_trainer_stops_mid_training_and_keeps_the_champion(
    settings: Settings, spawn: Spawn, db: asyncpg.Connection, tiny_model_5m: Path
) -> None:
    config, _, version = await _trainer_stopped_mid_training(settings, spawn, db, tiny_model_5m)
    rows = await db.fetch("SELECT status, message FROM job_logs WHERE job_name = 'train'")
    assert [r["status"] for r in rows] == ["running"]  # left for recover() to close and run again at the next start
    current = await get_champion(db, SYMBOL, "5m")
    assert current is not None and current.version == version
    assert await _count(db, "SELECT count(*) FROM models WHERE status = 'champion'") == 1
    # The request is consumed: it will not start a second run by being read again.
    group = f"{config.topic_prefix}candlecast-trainer"
    assert await committed(config, group, topics.TRAIN_REQUESTS) == 1


async def test_a_restarted_trainer_resumes_the_training_a_sigterm_interrupted(
    settings: Settings, spawn: Spawn, db: asyncpg.Connection, tiny_model_5m: Path
) -> None:
    _, trainer, _ = await _trainer_stopped_mid_training(settings, spawn, db, tiny_model_5m)
    await trainer.started()

    async def resumed() -> bool:
        return await _count(db, "SELECT count(*) FROM job_logs WHERE job_name = 'train' AND status = 'running'") > 0

    await eventually(resumed, "the interrupted training running again", within=30, watch=[trainer])


async def test_the_gateway_closes_its_websockets_and_exits_cleanly(settings: Settings, spawn: Spawn) -> None:
    gateway = await spawn("gateway", settings).started()
    async with websockets.connect(f"ws://127.0.0.1:{gateway.port}/ws/predictions") as ws:
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(f"http://127.0.0.1:{gateway.port}/ready")).status_code == 200
        stopping = asyncio.ensure_future(gateway.terminate())
        await asyncio.wait_for(ws.wait_closed(), 30)
        assert ws.close_code in (1001, 1012)  # going away / service restart
        assert await stopping == 0, gateway.tail()
