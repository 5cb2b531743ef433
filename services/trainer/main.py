"""`candlecast trainer`: wiring only; the work lives in the modules beside this one."""

from __future__ import annotations

import argparse
import asyncio
import logging
from concurrent.futures import Executor, ProcessPoolExecutor

from services.trainer.handlers import SERVICE, group_id, register
from services.trainer.housekeeping import measure_disk_forever, prune_forever
from services.trainer.runner import Trainer
from services.trainer.scheduler import TrainingScheduler
from services.trainer.triggers import Triggers
from services.trainer.worker import make_executor, shutdown_executor
from shared.config import Settings, get_settings
from shared.market.streams import Stream
from shared.messaging import topics
from shared.messaging.consumer_lag import report_lag_forever
from shared.messaging.runtime import cancel_and_wait, make_broker, run_until_signalled, start_metrics
from shared.model.training import TrainConfig
from shared.storage import create_pool

log = logging.getLogger(__name__)


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    config: TrainConfig | None = None,
    executor: Executor | None = None,
    bootstrap_period: float = 30.0,
) -> None:
    """Run until `stop` is set. Tests pass a tiny `config` and a shared, already warm `executor`."""
    pool = await create_pool(settings.database)
    broker = make_broker(settings, SERVICE)
    trainer = Trainer(settings, pool, broker, executor or make_executor(), config)
    scheduler = TrainingScheduler(trainer.run)
    triggers = Triggers(settings, pool, scheduler, trainer.locks)
    register(broker, settings, triggers)
    background: list[asyncio.Task[None]] = []
    try:
        for stream in settings.streams:  # before any trigger can start a run for the stream
            await trainer.ensure_series(stream)
            await trainer.show_champion(stream)
        await broker.start()
        log.info("%s connected to Kafka at %s", SERVICE, settings.kafka)
        resumed = await triggers.recover()
        if resumed:
            log.warning("resuming interrupted training of %s", ", ".join(map(str, resumed)))
        background.append(asyncio.create_task(triggers.watch_bootstrap(bootstrap_period), name="bootstrap"))
        background.append(asyncio.create_task(prune_forever(pool, settings), name="housekeeping"))
        background.append(asyncio.create_task(measure_disk_forever(pool, settings), name="disk"))
        if settings.promote_requires_live > 0:
            background.append(asyncio.create_task(watch_live(trainer, settings.streams), name="live-promotion"))
        triggers_topics = [settings.topic(t) for t in (topics.TICKS, topics.DRIFT, topics.TRAIN_REQUESTS)]
        background.append(asyncio.create_task(
            report_lag_forever(SERVICE, settings.kafka, group_id(settings), triggers_topics,
                               every=settings.consumer_lag_seconds), name="consumer-lag"))
        await stop.wait()
    finally:
        await cancel_and_wait(background)
        await scheduler.close()
        await trainer.locks.close()
        await broker.stop()
        # The runner replaces a pool whose worker died, so its current one is ours unless it is the caller's.
        if trainer.executor is not executor and isinstance(trainer.executor, ProcessPoolExecutor):
            shutdown_executor(trainer.executor)
        await pool.close()


async def watch_live(trainer: Trainer, streams: list[Stream], period: float = 30.0) -> None:
    """Now and then, let the live evidence decide on the candidates waiting for it."""
    while True:
        await asyncio.sleep(period)
        for stream in streams:
            try:
                await trainer.check_live(stream)
            except Exception as exc:  # a database hiccup: the next round decides
                log.warning("live promotion check for %s failed: %s", stream, exc)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_metrics(settings.trainer_metrics_port)
    asyncio.run(run_until_signalled(lambda stop: serve(settings, stop)))
    return 0
