"""What deserves a training run: daily ticks, drift, requests, no model yet, an interrupted run.

Each trigger is checked against what already happened, because Kafka redelivers and the
ingestor ticks every day of a replayed history again:

* a tick is served once the champion was trained on data through the tick's candle (less
  `retrain_every_days` - 1 days: weekly retraining of 1d lets six ticks pass), or by a run in
  progress (a daily retrain does not need the last five minutes);
* a drift event or a request is served by any run that started after it, finished or in
  progress (drift raised against a model that is no longer the champion is stale too);
* without a champion, a run starts once `train_min_candles` are stored and the history is
  complete: the ingestor's backfill is recorded (`ingest_progress`), or the stored candles cover
  the interval's training history (an import); a first model trained during a backfill would
  learn from its first days only and serve the rest. Again only after a quarter more arrived,
  if that run failed.

Every trigger is per stream (symbol, interval); the trainer serves the configured ones.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.trainer import store
from services.trainer.locks import StreamLocks
from services.trainer.scheduler import TrainingScheduler
from shared.config import Settings, interval_ms
from shared.market.streams import Stream
from shared.messaging.events import DailyTick, DriftEvent, TrainRequest
from shared.storage import models_registry as registry
from shared.storage.candle_store import DAY_MS, candle_span, caught_up_through

log = logging.getLogger(__name__)


class Triggers:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, scheduler: TrainingScheduler,
                 locks: StreamLocks) -> None:
        self.settings = settings
        self.pool = pool
        self.scheduler = scheduler
        self.locks = locks
        self._bootstrap_tried_at: dict[Stream, int] = {}
        self._waiting_logged: set[Stream] = set()

    def _ours(self, stream: Stream) -> bool:
        return stream in self.settings.streams

    async def tick(self, tick: DailyTick) -> bool:
        stream = Stream(tick.symbol, tick.interval)
        if not self._ours(stream):
            return False
        if self.scheduler.busy(stream):
            return False
        champion = await registry.get_champion(self.pool, tick.symbol, tick.interval)
        if champion is None:
            return await self.bootstrap_one(stream)
        slack = (self.settings.retrain_days(tick.interval) - 1) * DAY_MS + interval_ms(tick.interval)
        if champion.data_end is not None and champion.data_end >= tick.candle_time - slack:
            log.debug("tick %s for %s: %s trained recently enough", tick.day, stream, champion.version)
            return False
        return self._schedule(stream, f"daily tick {tick.day}")

    async def drift(self, event: DriftEvent) -> bool:
        stream = Stream(event.symbol, event.interval)
        if not self._ours(stream):
            return False
        champion = await registry.get_champion(self.pool, event.symbol, event.interval)
        if champion is None or (event.model_version is not None and event.model_version != champion.version):
            log.info("drift of %s for %s is stale (champion now %s)", event.model_version, event.symbol,
                     champion.version if champion else None)
            return False
        if await self._served_since(stream, event.detected_at):
            return False
        return self._schedule(stream, f"drift: {event.reason}")

    async def request(self, request: TrainRequest) -> bool:
        stream = Stream(request.symbol, request.interval)
        if not self._ours(stream):
            return False
        if await self._served_since(stream, request.requested_at):
            return False
        return self._schedule(stream, f"requested: {request.reason}")

    async def _served_since(self, stream: Stream, at_ms: int) -> bool:
        running = self.scheduler.running_since(stream)
        if running is not None and running > at_ms:
            return True
        return await store.run_started_after(self.pool, stream.symbol, stream.interval, at_ms) is not None

    def _schedule(self, stream: Stream, reason: str) -> bool:
        self.scheduler.request(stream, reason)
        return True

    async def bootstrap_one(self, stream: Stream) -> bool:
        """Train the first model of `stream` once enough candles are stored."""
        if self.scheduler.busy(stream):
            return False
        symbol, interval = stream
        if await registry.get_champion(self.pool, symbol, interval) is not None:
            return False
        count, first, last = await candle_span(self.pool, symbol, interval)
        needed = self.settings.train_min_candles
        tried = self._bootstrap_tried_at.get(stream)
        if count < needed or (tried is not None and count < tried + needed // 4):
            return False
        backfilled = await caught_up_through(self.pool, symbol, interval)
        complete = backfilled is not None and last is not None and last >= backfilled
        history = self.settings.history_candles_of(interval, training=True)
        covers = history is not None and first is not None and last is not None and \
            last - first >= (history - 1) * interval_ms(interval)
        if not (complete or covers):
            if stream not in self._waiting_logged:
                self._waiting_logged.add(stream)
                log.info("%s: %d candles stored; the first model waits for the backfill to be recorded "
                         "(ingestor at %s, stored through %s)", stream, count, backfilled, last)
            return False
        self._bootstrap_tried_at[stream] = count
        return self._schedule(stream, f"first model: {count} candles stored")

    async def recover(self) -> list[Stream]:
        """Close the runs a dead trainer left `running`, and run the trainings again. A row whose
        stream another trainer holds is that trainer's run in progress, and is left alone."""
        by_stream: dict[Stream, list[asyncpg.Record]] = {}
        for row in await store.running_jobs(self.pool):
            if row["symbol"] and Stream(row["symbol"], row["interval"]) in self.settings.streams:
                by_stream.setdefault(Stream(row["symbol"], row["interval"]), []).append(row)
        resumed = []
        for stream, rows in sorted(by_stream.items()):
            async with self.locks.holding(stream) as mine:
                if not mine:
                    continue
                await store.close_interrupted(self.pool, [r["id"] for r in rows])
            if any(r["job_name"] == store.TRAIN for r in rows):
                self._schedule(stream, "resuming a run interrupted by a restart")
                resumed.append(stream)
        return resumed

    async def watch_bootstrap(self, period: float = 30.0) -> None:
        while True:
            for stream in self.settings.streams:
                try:
                    await self.bootstrap_one(stream)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("bootstrap check for %s failed: %s", stream, exc)
            await asyncio.sleep(period)
