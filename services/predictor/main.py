"""`candlecast predictor`: wiring only; the work lives in the modules beside this one."""

from __future__ import annotations

import argparse
import asyncio
import logging

from services.predictor.engine import Predictor, model_switched
from services.predictor.handlers import SERVICE, group_id, register
from shared.config import Settings, get_settings
from shared.messaging import topics
from shared.messaging.consumer_lag import report_lag_forever
from shared.messaging.runtime import (
    cancel_and_wait,
    make_broker,
    make_producer,
    run_until_signalled,
    start_metrics,
)
from shared.model.champions import ChampionCache
from shared.storage import create_pool

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    pool = await create_pool(settings.database)
    broker = make_broker(settings, SERVICE)
    producer = make_producer(settings, SERVICE)
    champions = ChampionCache(pool, settings.model_dir, on_change=model_switched, with_challengers=True)
    predictor = Predictor(settings, pool, broker, champions, producer)
    register(broker, settings, predictor, champions)
    # The champion before the first candle: a candle consumed without a model is never predicted.
    streams: list[tuple[str, str]] = list(settings.streams)
    for symbol, interval in streams:
        await champions.refresh(symbol, interval)
        await predictor.warm_up(symbol, interval)
    tasks = []
    try:
        await producer.start()
        await broker.start()
        log.info("%s connected to Kafka at %s", SERVICE, settings.kafka)
        tasks = [
            asyncio.create_task(champions.watch(lambda: streams), name="champion-watch"),
            asyncio.create_task(predictor.staleness.run(), name="staleness"),
            asyncio.create_task(report_lag_forever(SERVICE, settings.kafka, group_id(settings),
                                                   [settings.topic(topics.CANDLES)],
                                                   every=settings.consumer_lag_seconds), name="consumer-lag"),
        ]
        for symbol, interval in streams:  # a promotion between the first read and the subscription
            await champions.refresh(symbol, interval)
        await stop.wait()
    finally:
        await cancel_and_wait(tasks)
        await broker.stop()  # the handler's batch in flight ends first: its events still go out
        await producer.stop()
        await pool.close()


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_metrics(settings.predictor_metrics_port)
    asyncio.run(run_until_signalled(lambda stop: serve(settings, stop)))
    return 0
