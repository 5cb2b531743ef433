"""What deserves a training run: daily ticks, drift, requests, no model yet, an interrupted run.

Each trigger is checked against what already happened, because Kafka redelivers and the
ingestor ticks every day of a replayed history again:

* a tick is served once the champion was trained on data through the tick's candle, or by a
  run in progress (a daily retrain does not need the last five minutes);
* a drift event or a request is served by any run that started after it, finished or in
  progress (drift raised against a model that is no longer the champion is stale too);
* without a champion, a run starts once `train_min_candles` are stored and the history is
  complete: the ingestor's backfill is recorded (`ingest_progress`), or the stored span covers
  `train_days` (an import); a first model trained during a backfill would learn from its first
  days only and serve the rest. Again only after a quarter more arrived, if that run failed.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.trainer import store
from services.trainer.scheduler import TrainingScheduler
from shared.config import Settings
from shared.messaging.events import DailyTick, DriftEvent, TrainRequest
from shared.storage import models_registry as registry
from shared.storage.candle_store import DAY_MS, candle_span, caught_up_through

log = logging.getLogger(__name__)


class Triggers:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, scheduler: TrainingScheduler) -> None:
        self.settings = settings
        self.pool = pool
        self.scheduler = scheduler
        self._bootstrap_tried_at: dict[str, int] = {}
        self._waiting_logged: set[str] = set()

    def _ours(self, interval: str) -> bool:
        return interval == self.settings.interval

    async def tick(self, tick: DailyTick) -> bool:
        if not self._ours(tick.interval):
            return False
        if self.scheduler.busy(tick.symbol):
            return False
        champion = await registry.get_champion(self.pool, tick.symbol, tick.interval)
        if champion is None:
            return await self.bootstrap_one(tick.symbol)
        if champion.data_end is not None and champion.data_end >= tick.candle_time - self.settings.interval_ms:
            log.debug("tick %s for %s: %s already trained through it", tick.day, tick.symbol, champion.version)
            return False
        return self._schedule(tick.symbol, f"daily tick {tick.day}")

    async def drift(self, event: DriftEvent) -> bool:
        if not self._ours(event.interval):
            return False
        champion = await registry.get_champion(self.pool, event.symbol, event.interval)
        if champion is None or (event.model_version is not None and event.model_version != champion.version):
            log.info("drift of %s for %s is stale (champion now %s)", event.model_version, event.symbol,
                     champion.version if champion else None)
            return False
        if await self._served_since(event.symbol, event.detected_at):
            return False
        return self._schedule(event.symbol, f"drift: {event.reason}")

    async def request(self, request: TrainRequest) -> bool:
        if not self._ours(request.interval):
            return False
        if await self._served_since(request.symbol, request.requested_at):
            return False
        return self._schedule(request.symbol, f"requested: {request.reason}")

    async def _served_since(self, symbol: str, at_ms: int) -> bool:
        running = self.scheduler.running_since(symbol)
        if running is not None and running > at_ms:
            return True
        started = await store.last_run_started(self.pool, symbol, self.settings.interval)
        return started is not None and started.timestamp() * 1000 > at_ms

    def _schedule(self, symbol: str, reason: str) -> bool:
        self.scheduler.request(symbol, reason)
        return True

    async def bootstrap_one(self, symbol: str) -> bool:
        """Train the first model of `symbol` once enough candles are stored."""
        if self.scheduler.busy(symbol):
            return False
        if await registry.get_champion(self.pool, symbol, self.settings.interval) is not None:
            return False
        interval = self.settings.interval
        count, first, last = await candle_span(self.pool, symbol, interval)
        needed = self.settings.train_min_candles
        tried = self._bootstrap_tried_at.get(symbol)
        if count < needed or (tried is not None and count < tried + needed // 4):
            return False
        backfilled = await caught_up_through(self.pool, symbol, interval)
        complete = backfilled is not None and last is not None and last >= backfilled
        covers = first is not None and last is not None and \
            last - first >= self.settings.train_days * DAY_MS - self.settings.interval_ms
        if not (complete or covers):
            if symbol not in self._waiting_logged:
                self._waiting_logged.add(symbol)
                log.info("%s %s: %d candles stored; the first model waits for the backfill to be recorded "
                         "(ingestor at %s, stored through %s)", symbol, interval, count, backfilled, last)
            return False
        self._bootstrap_tried_at[symbol] = count
        return self._schedule(symbol, f"first model: {count} candles stored")

    async def recover(self) -> list[str]:
        """Close the runs a dead trainer left `running`, and run them again."""
        rows = await store.close_interrupted(self.pool, store.TRAIN)
        await store.close_interrupted(self.pool, store.REBUILD_SERIES)
        symbols = sorted({r["symbol"] for r in rows if r["symbol"] and r["interval"] == self.settings.interval})
        for symbol in symbols:
            self._schedule(symbol, "resuming a run interrupted by a restart")
        return symbols

    async def watch_bootstrap(self, period: float = 30.0) -> None:
        while True:
            for symbol in self.settings.symbols:
                try:
                    await self.bootstrap_one(symbol)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("bootstrap check for %s failed: %s", symbol, exc)
            await asyncio.sleep(period)
