"""`candlecast predictor`: wiring only; the work lives in the modules beside this one."""

from __future__ import annotations

import argparse
import asyncio
import logging

from shared.config import Settings, get_settings
from shared.runtime import make_broker, run_until_signalled, start_metrics

log = logging.getLogger(__name__)

SERVICE = "predictor"


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    broker = make_broker(settings, SERVICE)
    await broker.start()
    log.info("%s connected to Kafka at %s", SERVICE, settings.kafka)
    try:
        await stop.wait()
    finally:
        await broker.stop()


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_metrics(settings.predictor_metrics_port)
    asyncio.run(run_until_signalled(lambda stop: serve(settings, stop)))
    return 0
