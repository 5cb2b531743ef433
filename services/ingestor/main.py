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
import asyncpg
from faststream.kafka import KafkaBroker

from services.ingestor.binance import Binance, WeightBudget
from services.ingestor.filler import RestFiller
from services.ingestor.options import IngestOptions
from services.ingestor.publisher import CandlePublisher
from services.ingestor.recorder import add_recorder, recorder_group
from services.ingestor.stream import LiveStream, split
from shared.config import Settings, get_settings
from shared.messaging import topics
from shared.messaging.consumer_lag import report_lag_forever
from shared.messaging.runtime import cancel_and_wait, make_broker, run_until_signalled, start_metrics
from shared.messaging.topics import ensure_topics
from shared.storage import create_pool

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
                tasks.add(asyncio.create_task(run_ingest(settings, broker, pool, session, options), name="ingest"))
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # re-raises an ingest failure
            finally:
                await cancel_and_wait(tasks)
    finally:
        await broker.stop()
        await pool.close()


async def run_ingest(
    settings: Settings,
    broker: KafkaBroker,
    pool: asyncpg.Pool,
    session: aiohttp.ClientSession,
    options: IngestOptions | None = None,
) -> None:
    """Backfill over REST from where the stream stopped, then the live websocket for good."""
    options = options or IngestOptions()
    exchange = Binance(settings.binance_rest_url, settings.binance_ws_url, session, backoff=options.backoff,
                       long_wait=options.long_backoff,
                       budget=WeightBudget(options.weight_limit, options.weight_window))
    publisher = CandlePublisher(broker, settings)
    filler = RestFiller(settings, exchange, publisher, pool, options)
    await filler.start_points()
    await filler.catch_up(gap_fill=False)
    await filler.mark_caught_up()
    connections = split(filler.streams)
    if len(connections) > 1:
        log.info("%d streams on %d websocket connections", len(filler.streams), len(connections))
    await asyncio.gather(*(LiveStream(settings, session, exchange, publisher, filler, streams, options).run()
                           for streams in connections))


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_metrics(settings.ingestor_metrics_port)
    asyncio.run(run_until_signalled(lambda stop: serve(settings, stop)))
    return 0
