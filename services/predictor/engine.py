"""Per closed candle t, in order: fill the row that predicted t, predict t+1, store it, publish.

A batch of candles is processed per symbol in one go: one batch inference (`predict_many`) and
two set-based statements in one transaction, which is how a backlog (backfill, replay, restart)
catches up fast. A live candle is the same path with a batch of one. The database commit comes
before any event is published, and the caller commits the Kafka offsets after this returns, so
a crash anywhere replays the batch, and the replay finds the same rows (first prediction wins).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from services.predictor import store
from services.predictor.champions import Champion, Champions
from services.predictor.history import CandleHistory
from services.predictor.metrics import (
    BATCH_CANDLES,
    CANDLE_TO_PREDICTION_SECONDS,
    DIRECTION_HIT_RATE,
    DRIFT_EVENTS,
    INFERENCE_SECONDS,
    PREDICTIONS,
    ROLLING_MAPE,
    ROLLING_PERSISTENCE_MAPE,
)
from services.predictor.rolling import DriftDetector, DriftPolicy, RollingError
from services.predictor.staleness import StalenessWatch
from shared import topics
from shared.binance_csv import candles_to_frame
from shared.candle_store import candle_span, load_candles, load_last_candles
from shared.config import Settings
from shared.events import Candle, DriftEvent
from shared.features import LOOKBACK
from shared.model.dataset import valid_end_indices
from shared.model.forecast import NextCandle

log = logging.getLogger(__name__)


#: Seconds a batch waits (by being replayed) for the recorder to store the candles before it.
RECORDER_WAIT = 30.0


class HistoryGap(RuntimeError):
    """The candles before a batch are not known yet; the batch is replayed a little later."""


class Outbox:
    """Events of one batch, sent without waiting for each, then awaited together."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker
        self._pending: list[asyncio.Future[Any]] = []

    async def add(self, event: BaseModel, topic: str, symbol: str) -> None:
        sent = await self._broker.publish(event, topic, key=topics.symbol_key(symbol), no_confirm=True)
        if isinstance(sent, asyncio.Future):
            self._pending.append(sent)

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


class Predictor:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, broker: KafkaBroker, champions: Champions) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.champions = champions
        self.policy = DriftPolicy.from_settings(settings)
        self.staleness = StalenessWatch(settings.symbols, settings.interval_ms)
        self._histories: dict[str, CandleHistory] = {}
        self._rolling: dict[str, RollingError] = {}
        self._drift: dict[str, DriftDetector] = {}
        self._gaps: dict[str, tuple[int, float]] = {}

    # -- state per symbol ------------------------------------------------------------------

    def _history_needed(self, symbol: str) -> int:
        champion = self.champions.get(symbol)
        return champion.model.history_needed if champion else self.settings.window + LOOKBACK

    async def warm_up(self, symbol: str) -> None:
        """Load the last candles and the last filled predictions of `symbol` (once)."""
        if symbol in self._histories:
            return
        interval = self.settings.interval
        if self.champions.get(symbol) is None:  # a symbol first seen in the stream
            await self.champions.refresh(symbol)
        need = self._history_needed(symbol)
        _, first_stored, _ = await candle_span(self.pool, symbol, interval)
        history = CandleHistory(self.settings.interval_ms, keep=2 * need, floor=first_stored)
        history.merge(await load_last_candles(self.pool, symbol, interval, history.keep))
        rolling = RollingError(self.policy.window)
        rolling.add(await store.recent_filled(self.pool, symbol, interval, self.policy.window))
        last_drift = await store.last_drift_time(self.pool, symbol, interval)
        self._histories[symbol] = history
        self._rolling[symbol] = rolling
        self._drift[symbol] = DriftDetector(self.policy, last_drift)
        self._publish_stats(symbol)
        log.info("%s: %d candles in memory (last %s), %d filled predictions in the rolling window",
                 symbol, len(history), history.last_time, len(rolling))

    # -- the work ----------------------------------------------------------------------------

    async def process(self, candles: Sequence[Candle], received_ms: Sequence[int] | None = None) -> None:
        """Handle a batch of closed candles (any symbols, any order)."""
        BATCH_CANDLES.observe(len(candles))
        by_symbol: dict[str, list[tuple[Candle, int | None]]] = defaultdict(list)
        for i, candle in enumerate(candles):
            by_symbol[candle.symbol].append((candle, received_ms[i] if received_ms else None))
        outbox = Outbox(self.broker)
        drifting = []
        for symbol, items in by_symbol.items():
            latest: dict[int, tuple[Candle, int | None]] = {}
            for candle, received in items:
                latest[candle.open_time] = (candle, received)  # the same candle twice: the later copy
            ordered = [latest[t] for t in sorted(latest)]
            if await self._process_symbol(symbol, ordered, outbox):
                drifting.append(symbol)
        await outbox.flush()
        for symbol in drifting:
            await self._declare_drift(symbol)

    async def _process_symbol(self, symbol: str, items: list[tuple[Candle, int | None]], outbox: Outbox) -> bool:
        """Returns whether the symbol's drift should be checked."""
        await self.warm_up(symbol)
        self.staleness.seen(symbol)
        interval = self.settings.interval
        frame = candles_to_frame([c for c, _ in items])
        history = self._histories[symbol]
        champion = self.champions.get(symbol)
        need = self._history_needed(symbol)
        history.keep = max(history.keep, 2 * need)
        first = int(frame["open_time"].iloc[0])
        if history.floor is None or first < history.floor:
            history.floor = first  # the store has nothing older: the stream starts here
        missing = history.missing_range(first, need)
        if missing is not None:  # a replay, a restart, a backlog older than the buffer: the slow path
            start, end = missing
            history.loaded(await load_candles(self.pool, symbol, interval, since_ms=start, until_ms=end), start, end)
        self._wait_for_recorder(symbol, history, first)
        history.merge(frame)
        predictions = await self._predict(champion, history, frame["open_time"].to_numpy(np.int64))

        async with self.pool.acquire() as conn, conn.transaction():
            version = champion.version if champion else ""
            rows = list(await store.insert_predictions(conn, symbol, interval, predictions, version))
            already = {p.target_time for p in predictions} - {r["time"] for r in rows}
            if already:  # a replay: publish what was stored the first time
                rows += await store.stored_predictions(conn, symbol, interval, sorted(already))
            filled = await store.fill_futures(conn, symbol, interval, frame)
        history.trim(upto=int(frame["open_time"].iloc[-1]))

        for row in filled:
            await outbox.add(store.real_close_event(row, symbol, interval), self.settings.topic(topics.PREDICTIONS),
                             symbol)
        for row in sorted(rows, key=lambda r: r["time"]):
            await outbox.add(store.prediction_event(row, symbol, interval), self.settings.topic(topics.PREDICTIONS),
                             symbol)
        PREDICTIONS.labels(symbol).inc(len(predictions) - len(already))
        self._observe_latency(items, bool(predictions))

        rolling = self._rolling[symbol]
        rolling.add(store.filled_row(r) for r in filled)
        self._publish_stats(symbol)
        return bool(filled) and champion is not None

    def _wait_for_recorder(self, symbol: str, history: CandleHistory, first: int) -> None:
        """Refuse the batch (it is replayed) while the candles just before it are not stored yet.

        After a restart the buffer comes from Postgres, and the recorder (another consumer of the
        same topic) may be a little behind this consumer's committed offset: predicting now would
        leave a hole. A gap that is still there after `RECORDER_WAIT` is a real one (the exchange
        had none of those candles) and is logged, not waited for again.
        """
        if not history.gap_before(first):
            self._gaps.pop(symbol, None)
            return
        seen = self._gaps.setdefault(symbol, (first, time.monotonic()))
        if seen[0] != first:
            seen = self._gaps[symbol] = (first, time.monotonic())
        if time.monotonic() - seen[1] < RECORDER_WAIT:
            history.forget_absent()  # read the store again on the replay
            raise HistoryGap(f"{symbol}: candles before {first} are neither in memory nor stored yet")
        log.error("%s: candles before %d are missing from the store; predicting after the gap only", symbol, first)

    async def _predict(self, champion: Champion | None, history: CandleHistory, times: np.ndarray) -> list[NextCandle]:
        """The next candle after each of `times` that has a full, gap-free history."""
        if champion is None:
            return []
        model = champion.model
        held = history.frame["open_time"].to_numpy(np.int64)
        valid = valid_end_indices(held, model.interval_ms, model.window, with_target=False)
        ends = np.intersect1d(history.positions(times), valid)
        if len(ends) < len(times):
            log.debug("%d of %d candles lack a full gap-free history and are not predicted", len(times) - len(ends),
                      len(times))
        if len(ends) == 0:
            return []
        started = time.perf_counter()
        if len(ends) == 1:
            predictions = model.predict_many(history.frame, ends.tolist())  # live: one window, ~2 ms for window 60
        else:
            predictions = await asyncio.to_thread(model.predict_many, history.frame, ends.tolist())
        INFERENCE_SECONDS.observe((time.perf_counter() - started) / len(ends))
        return predictions

    def _observe_latency(self, items: list[tuple[Candle, int | None]], predicted: bool) -> None:
        """Close-to-publish time of live candles (alone in their batch, written to Kafka less than
        an interval ago) only: a backlog candle's age is not latency.

        The close is the candle's own close time when the record was written at that moment
        (Binance live); for a feed with its own clock (replay, the 600x stand-in) the moment the
        candle was written to Kafka stands in for it.
        """
        if not predicted or len(items) > 1:  # a batch is a backlog
            return
        candle, received = items[-1]
        now_ms = time.time() * 1000
        interval_ms = self.settings.interval_ms
        if received is None or now_ms - received > interval_ms:
            return
        closed = candle.close_time + 1
        reference = closed if abs(received - closed) < interval_ms else received
        CANDLE_TO_PREDICTION_SECONDS.observe(max(0.0, now_ms - reference) / 1000)

    def _publish_stats(self, symbol: str) -> None:
        stats = self._rolling[symbol].stats()
        if stats.rows:
            ROLLING_MAPE.labels(symbol).set(stats.mape)
            ROLLING_PERSISTENCE_MAPE.labels(symbol).set(stats.persistence_mape)
            DIRECTION_HIT_RATE.labels(symbol).set(stats.hit_rate)

    async def _declare_drift(self, symbol: str) -> None:
        champion = self.champions.get(symbol)
        if champion is None:
            return
        drift = self._drift[symbol].check(self._rolling[symbol], champion.version)
        if drift is None:
            return
        interval = self.settings.interval
        await store.insert_drift(self.pool, symbol, interval, drift, self.policy.window)
        event = DriftEvent(
            symbol=symbol,
            interval=interval,
            window=drift.stats.rows,
            mape=drift.stats.mape,
            persistence_mape=drift.stats.persistence_mape,
            threshold=drift.threshold,
            reason=drift.reason,
            model_version=drift.model_version,
            candle_time=drift.candle_time,
        )
        await self.broker.publish(event, self.settings.topic(topics.DRIFT), key=topics.symbol_key(symbol))
        DRIFT_EVENTS.labels(symbol).inc()
        log.warning("DRIFT %s %s at candle %d: %s", symbol, interval, drift.candle_time, drift.reason)
