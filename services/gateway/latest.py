"""The newest prediction of each stream, kept between requests: `GET /predictions/latest` is the
endpoint every client polls, and the answer changes once per candle.

An entry is dropped when the `predictions` topic brings a newer prediction of its stream (the
gateway reads the topic for its websocket clients anyway; the predictor publishes only after its
transaction commits, so the next read finds the new row), and it lives at most `ttl` seconds in
any case: a gateway cut off from Kafka hears of no new prediction, and must not serve the old
one for longer than that. A read that began before a drop cannot put back what it read (a
generation per stream), so an answer is never older than the newest announced prediction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Stream = tuple[str, str]

#: Seconds an entry is served without news from Kafka.
TTL_SECONDS = 1.0


class LatestPredictions:
    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._rows: dict[Stream, tuple[float, dict[str, Any]]] = {}
        self._generations: dict[Stream, int] = {}

    def get(self, stream: Stream) -> dict[str, Any] | None:
        entry = self._rows.get(stream)
        if entry is None or self._clock() - entry[0] > self.ttl:
            return None
        return entry[1]

    def generation(self, stream: Stream) -> int:
        """Take before reading the store; hand back to `put`."""
        return self._generations.get(stream, 0)

    def put(self, stream: Stream, generation: int, row: dict[str, Any]) -> None:
        """Keep `row`, unless a newer prediction was announced since `generation` was taken."""
        if self._generations.get(stream, 0) == generation:
            self._rows[stream] = (self._clock(), row)

    def announced(self, stream: Stream) -> None:
        """A newer prediction of `stream` exists: the next request reads the store."""
        self._generations[stream] = self._generations.get(stream, 0) + 1
        self._rows.pop(stream, None)
