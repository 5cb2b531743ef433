"""`candlecast predictor`: wiring only; the work lives in the modules beside this one."""

from __future__ import annotations

import argparse
import asyncio
import logging

from services.predictor.champions import Champions
from services.predictor.engine import Predictor
from services.predictor.handlers import SERVICE, register
from shared.config import Settings, get_settings
from shared.db import create_pool
from shared.runtime import cancel_and_wait, make_broker, run_until_signalled, start_metrics

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    pool = await create_pool(settings.database)
    broker = make_broker(settings, SERVICE)
    champions = Champions(pool, settings.interval, settings.interval_ms)
    predictor = Predictor(settings, pool, broker, champions)
    register(broker, settings, predictor, champions)
    # The champion before the first candle: a candle consumed without a model is never predicted.
    for symbol in settings.symbols:
        await champions.refresh(symbol)
        await predictor.warm_up(symbol)
    tasks = []
    try:
        await broker.start()
        log.info("%s connected to Kafka at %s", SERVICE, settings.kafka)
        tasks = [
            asyncio.create_task(champions.watch(settings.symbols), name="champion-watch"),
            asyncio.create_task(predictor.staleness.run(), name="staleness"),
        ]
        for symbol in settings.symbols:  # a promotion between the first read and the subscription
            await champions.refresh(symbol)
        await stop.wait()
    finally:
        await cancel_and_wait(tasks)
        await broker.stop()
        await pool.close()


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_metrics(settings.predictor_metrics_port)
    asyncio.run(run_until_signalled(lambda stop: serve(settings, stop)))
    return 0
