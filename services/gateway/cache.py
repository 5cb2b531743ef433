"""Answers kept between requests, per stream: the newest prediction (`GET /predictions/latest`,
the endpoint every client polls) and the `/series` pages asked for (a dashboard's day, asked by
every viewer). Both change once per candle.

A stream's entries are dropped when the `predictions` topic brings a newer prediction of it (the
gateway reads the topic for its websocket clients anyway; the predictor publishes only after its
transaction commits, so the next read finds the new rows), and each lives `ttl` seconds in any
case (plus the time it takes to read it again, 2 x `ttl` at most): a gateway cut off from Kafka
hears of no new prediction, and what changes without one (a gap filled, a new champion's series)
must show within that bound. A read that began before a drop cannot put back what it read (a
generation per stream), so an answer is never older than the newest announced prediction.
Requests that miss the same entry at once wait for one read of the store (`get_or_make`), and an
entry past its `ttl` answers while it is read again: when the day's page every viewer polls
expired, all 32 connections of the bench waited for its read each second, and the p99 of
`/series` was 100 ms for a p50 of 11 ms.

Measured with `bench/gateway_bench.py` (2 cores, wrk, 32 connections): a day of `/series` costs
Postgres ~6 ms of CPU to build (332 req/s with no HTTP at all); a kept page is served without it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

Stream = tuple[str, str]

#: Seconds an entry is served without news from Kafka.
TTL_SECONDS = 1.0
#: Entries kept per stream (pages of a day are ~100-200 KB); the oldest goes first.
MAX_PER_STREAM = 32


class StreamCache:
    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic,
                 max_per_stream: int = MAX_PER_STREAM) -> None:
        self.ttl = ttl
        self.max_per_stream = max_per_stream
        self._clock = clock
        self._entries: dict[Stream, dict[Hashable, tuple[float, Any]]] = {}
        self._generations: dict[Stream, int] = {}
        self._reads: dict[tuple[Stream, Hashable], asyncio.Future[Any]] = {}

    def get(self, stream: Stream, key: Hashable = None) -> Any | None:
        value, age = self._kept(stream, key)
        return value if age <= self.ttl else None

    def _kept(self, stream: Stream, key: Hashable) -> tuple[Any | None, float]:
        """The entry's value and age in seconds (None and infinity when there is none, or when
        nothing is kept at all)."""
        entry = self._entries.get(stream, {}).get(key)
        if entry is None or self.ttl <= 0:
            return None, math.inf
        return entry[1], self._clock() - entry[0]

    async def get_or_make(self, stream: Stream, key: Hashable, make: Callable[[], Awaitable[Any]]) -> Any:
        """The kept value, else `make()`'s (kept); one `make` at a time per entry, the others await
        it (and get its exception too). A waiter that is cancelled does not cancel the read.

        An entry past its `ttl` (not dropped by an announcement) still answers while it is read
        again, for one more `ttl` at most: the viewers of a page do not all wait for the read."""
        if self.ttl <= 0:  # nothing kept, nothing shared
            return await make()
        value, age = self._kept(stream, key)
        if age <= self.ttl:
            return value
        read = self._reads.get((stream, key)) or self._read(stream, key, make)
        if age <= 2 * self.ttl:
            return value
        return await asyncio.shield(read)

    def _read(self, stream: Stream, key: Hashable, make: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        generation = self.generation(stream)

        async def made() -> Any:
            value = await make()
            self.put(stream, generation, value, key)
            return value

        def done(read: asyncio.Future[Any]) -> None:
            self._reads.pop((stream, key), None)
            if not read.cancelled():
                read.exception()  # retrieved: a read nobody awaited (a refresh) fails quietly

        read = self._reads[(stream, key)] = asyncio.ensure_future(made())
        read.add_done_callback(done)
        return read

    def generation(self, stream: Stream) -> int:
        """Take before reading the store; hand back to `put`."""
        return self._generations.get(stream, 0)

    def put(self, stream: Stream, generation: int, value: Any, key: Hashable = None) -> None:
        """Keep `value`, unless a newer prediction was announced since `generation` was taken."""
        if self._generations.get(stream, 0) != generation:
            return
        entries = self._entries.setdefault(stream, {})
        entries.pop(key, None)
        entries[key] = (self._clock(), value)
        while len(entries) > self.max_per_stream:
            del entries[next(iter(entries))]

    def announced(self, stream: Stream) -> None:
        """A newer prediction of `stream` exists: the next requests read the store."""
        self._generations[stream] = self._generations.get(stream, 0) + 1
        self._entries.pop(stream, None)
