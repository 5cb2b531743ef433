"""`candlecast ingestor`: wiring only; the work lives in the modules beside this one.

    ingest.Ingestor        backfill + REST catch-ups     -> candles
    stream.LiveStream      Binance websocket             -> candles (closed), candles-live (forming)
    recorder.add_recorder  candles                       -> Postgres, ticks
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import aiohttp

from services.ingestor.ingest import IngestOptions, Ingestor
from services.ingestor.recorder import add_recorder, recorder_group
from shared import topics
from shared.config import Settings, get_settings
from shared.consumer_lag import report_lag_forever
from shared.db import create_pool
from shared.runtime import cancel_and_wait, make_broker, run_until_signalled, start_metrics
from shared.topics import ensure_topics

log = logging.getLogger(__name__)

SERVICE = "ingestor"


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    options: IngestOptions | None = None,
    ingest: bool = True,
    record: bool = True,
) -> None:
    """Run until `stop` is set: ingest from Binance and/or record into Postgres.

    An unexpected failure of the ingest task ends `serve` with that exception.
    """
    await ensure_topics(settings)
    pool = await create_pool(settings.database)
    broker = make_broker(settings, SERVICE)
    if record:
        add_recorder(broker, settings, pool)
    try:
        await broker.start()
        log.info("%s connected to Kafka at %s; Binance at %s", SERVICE, settings.kafka, settings.binance_rest_url)
        async with aiohttp.ClientSession() as session:
            tasks: set[asyncio.Task[object]] = {asyncio.create_task(stop.wait(), name="stop")}
            if record:
                lag = report_lag_forever("recorder", settings.kafka, recorder_group(settings),
                                         [settings.topic(topics.CANDLES)], every=settings.consumer_lag_seconds)
                tasks.add(asyncio.create_task(lag, name="consumer-lag"))
            if ingest:
                ingestor = Ingestor(settings, broker, pool, session, options)
                tasks.add(asyncio.create_task(ingestor.run(), name="ingest"))
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # re-raises an ingest failure
            finally:
                await cancel_and_wait(tasks)
    finally:
        await broker.stop()
        await pool.close()


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_metrics(settings.ingestor_metrics_port)
    asyncio.run(run_until_signalled(lambda stop: serve(settings, stop)))
    return 0
