"""One training at a time per stream across every trainer: a Postgres advisory lock per stream.

Trainers scale out by sharing the streams. The trigger topics are keyed by symbol, so one
consumer group hands each daily tick, drift event and request to one trainer; but each trainer
also starts runs of its own (a stream without a model, a run a crash interrupted, the live
promotion check), and those it would start for every stream. So before any run, a trainer takes
the stream's lock; a stream locked by another trainer is left to it, and a run whose trigger was
served by a run that started after it (on any trainer) does not start (`Trainer.run`).

The locks are session-level advisory locks on one connection kept for them: a trainer that
dies, or loses that connection, releases its streams at once, and `Triggers.recover` closes as
interrupted only the `running` rows whose stream nobody holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from shared.market.streams import Stream

log = logging.getLogger(__name__)


def lock_key(stream: Stream) -> str:
    return f"candlecast-train {stream.symbol} {stream.interval}"


class StreamLocks:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: asyncpg.Connection | None = None
        self._guard = asyncio.Lock()  # one statement at a time on the one connection
        self.held: set[Stream] = set()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            if self.held:
                log.warning("the lock connection was lost: %d streams were released", len(self.held))
                self.held.clear()
            self._conn = await asyncpg.connect(self._url)
        return self._conn

    async def try_lock(self, stream: Stream) -> bool:
        """Take `stream` if no trainer (this one included) holds it."""
        async with self._guard:
            if stream in self.held:
                return False
            conn = await self._connection()
            taken = bool(await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                                             lock_key(stream)))
            if taken:
                self.held.add(stream)
            return taken

    async def lock(self, stream: Stream, every: float) -> None:
        """Take `stream`, trying every `every` seconds while another trainer (or task) holds it."""
        while True:
            if await self.try_lock(stream):
                return
            await asyncio.sleep(every)

    async def unlock(self, stream: Stream) -> None:
        async with self._guard:
            if stream not in self.held:
                return
            self.held.discard(stream)
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.fetchval("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock_key(stream))

    @contextlib.asynccontextmanager
    async def holding(self, stream: Stream) -> AsyncIterator[bool]:
        """Whether `stream` was taken; released on the way out."""
        taken = await self.try_lock(stream)
        try:
            yield taken
        finally:
            if taken:
                await self.unlock(stream)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        self.held.clear()
