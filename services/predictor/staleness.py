"""The staleness alarm: no candle for longer than two intervals means the feed is broken.

Measured on this machine's clock since a candle last *arrived* (not since its close time): a
replay or the 600x stand-in carries old close times, and a feed that delivers is not stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from services.predictor.metrics import CANDLES_STALE, SECONDS_SINCE_LAST_CANDLE

log = logging.getLogger(__name__)

STALE_AFTER_INTERVALS = 2.0


class StalenessWatch:
    def __init__(
        self, symbols: Iterable[str], interval_ms: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit_seconds = STALE_AFTER_INTERVALS * interval_ms / 1000
        self._clock = clock
        started = clock()
        self._last_seen: dict[str, float] = dict.fromkeys(symbols, started)
        self._stale: set[str] = set()

    def seen(self, symbol: str) -> None:
        self._last_seen[symbol] = self._clock()
        if symbol in self._stale:
            self._stale.discard(symbol)
            CANDLES_STALE.labels(symbol).set(0)
            log.info("candles for %s arrive again", symbol)

    def check(self) -> list[str]:
        """Update the gauges; returns the symbols that just became stale (each logged once)."""
        now = self._clock()
        newly = []
        for symbol, last in self._last_seen.items():
            age = now - last
            SECONDS_SINCE_LAST_CANDLE.labels(symbol).set(age)
            if age > self.limit_seconds and symbol not in self._stale:
                self._stale.add(symbol)
                newly.append(symbol)
                CANDLES_STALE.labels(symbol).set(1)
                log.warning(
                    "STALE: no candle for %s in %.0f s (more than %.0f s, two intervals); is the ingestor running?",
                    symbol,
                    age,
                    self.limit_seconds,
                )
            elif symbol not in self._stale:
                CANDLES_STALE.labels(symbol).set(0)
        return newly

    @property
    def stale(self) -> set[str]:
        return set(self._stale)

    async def run(self, period: float = 1.0) -> None:
        while True:
            self.check()
            await asyncio.sleep(period)
