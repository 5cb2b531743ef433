"""Faults 1 and 2: Kafka, then Postgres, stopped for 30 s in the middle of the live stream.

On servers of this session's own (`throwaway`), so the shared ones keep serving everybody else.
The stand-in keeps closing candles (2 a second) all along; afterwards every candle is in the
topic once, in Postgres once, and predicted once, and no service gave up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from shared.config import Settings
from testkit.infra import ThrowawayInfra
from testkit.metrics import metric
from testkit.waiting import eventually
from tests.faults.conftest import Spawn
from tests.faults.support import against, binance, champion, settled, sim_now, topic_duplicates

OUTAGE_SECONDS = 30.0


async def test_kafka_stopped_for_30_s_loses_and_doubles_nothing(
    throwaway: ThrowawayInfra, throwaway_settings: Settings, spawn: Spawn, tiny_model_5m: Path
) -> None:
    async with binance() as sim:
        config = against(throwaway_settings, sim)
        await champion(config, tiny_model_5m)
        ingestor = await spawn("ingestor", config).started()
        predictor = await spawn("predictor", config).started()
        watch = [ingestor, predictor]
        db = await asyncpg.connect(config.database)
        try:
            await settled(db, until=await sim_now(sim), within=120, watch=watch)

            await asyncio.to_thread(throwaway.stop_kafka)
            stopped_at = await sim_now(sim)
            await asyncio.sleep(OUTAGE_SECONDS)
            for process in watch:
                process.check_alive()
            await asyncio.to_thread(throwaway.start_kafka)

            # Everything that closed while Kafka was away, and a little more, arrives once.
            final = await settled(db, until=await sim_now(sim) + 10 * 300_000, within=120, watch=watch)
        finally:
            await db.close()
    assert final.ok and final.futures_expected > 0
    assert stopped_at < await _last(config)
    assert await topic_duplicates(config) == []


async def test_postgres_stopped_for_30_s_loses_and_doubles_nothing(
    throwaway: ThrowawayInfra, throwaway_settings: Settings, spawn: Spawn, tiny_model_5m: Path
) -> None:
    async with binance() as sim:
        config = against(throwaway_settings, sim)
        await champion(config, tiny_model_5m)
        ingestor = await spawn("ingestor", config).started()
        predictor = await spawn("predictor", config).started()
        gateway = await spawn("gateway", config).started()
        watch = [ingestor, predictor, gateway]
        ready_url = f"http://127.0.0.1:{gateway.port}/ready"
        db = await asyncpg.connect(config.database)
        try:
            await settled(db, until=await sim_now(sim), within=120, watch=watch)
        finally:
            await db.close()

        await asyncio.to_thread(throwaway.stop_postgres)
        stopped_at = await sim_now(sim)
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(ready_url)).status_code == 503  # says so, does not hang
            await asyncio.sleep(OUTAGE_SECONDS)
            for process in watch:
                process.check_alive()
            # Meanwhile candles kept flowing into Kafka, waiting for the database.
            assert await metric(ingestor.port or 0, "candlecast_candles_published_total") > 0
            await asyncio.to_thread(throwaway.start_postgres)

            db = await asyncpg.connect(config.database)
            try:
                final = await settled(db, until=await sim_now(sim) + 10 * 300_000, within=120, watch=watch)
            finally:
                await db.close()
            await eventually(lambda: _ready(http, ready_url), "the gateway ready again", within=60, watch=watch)
    assert final.ok and final.futures_expected > 0
    assert stopped_at < await _last(config)
    assert await topic_duplicates(config) == []


async def _ready(http: httpx.AsyncClient, url: str) -> bool:
    return (await http.get(url)).status_code == 200


async def _last(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database)
    try:
        return int(await conn.fetchval("SELECT max(open_time) FROM candles"))
    finally:
        await conn.close()
