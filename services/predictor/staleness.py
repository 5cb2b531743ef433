"""The staleness alarm: no candle of a stream for longer than two of its intervals means the feed is broken.

Measured on this machine's clock since a candle last *arrived* (not since its close time): a
replay or the 600x stand-in carries old close times, and a feed that delivers is not stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from services.predictor.metrics import CANDLES_STALE, SECONDS_SINCE_LAST_CANDLE
from shared.config import interval_ms
from shared.market.streams import Stream

log = logging.getLogger(__name__)

STALE_AFTER_INTERVALS = 2.0


class StalenessWatch:
    def __init__(self, streams: Iterable[Stream], clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {s: STALE_AFTER_INTERVALS * interval_ms(s.interval) / 1000 for s in streams}
        self._clock = clock
        started = clock()
        self._last_seen: dict[Stream, float] = dict.fromkeys(self.limits, started)
        self._stale: set[Stream] = set()

    def seen(self, stream: Stream) -> None:
        self._last_seen[stream] = self._clock()
        if stream in self._stale:
            self._stale.discard(stream)
            CANDLES_STALE.labels(*stream).set(0)
            log.info("candles for %s arrive again", stream)

    def check(self) -> list[Stream]:
        """Update the gauges; returns the streams that just became stale (each logged once)."""
        now = self._clock()
        newly = []
        for stream, last in self._last_seen.items():
            age = now - last
            limit = self.limits.get(stream, STALE_AFTER_INTERVALS * interval_ms(stream.interval) / 1000)
            SECONDS_SINCE_LAST_CANDLE.labels(*stream).set(age)
            if age > limit and stream not in self._stale:
                self._stale.add(stream)
                newly.append(stream)
                CANDLES_STALE.labels(*stream).set(1)
                log.warning(
                    "STALE: no candle for %s in %.0f s (more than %.0f s, two intervals); is the ingestor running?",
                    stream,
                    age,
                    limit,
                )
            elif stream not in self._stale:
                CANDLES_STALE.labels(*stream).set(0)
        return newly

    @property
    def stale(self) -> set[Stream]:
        return set(self._stale)

    async def run(self, period: float = 1.0) -> None:
        while True:
            self.check()
            await asyncio.sleep(period)
