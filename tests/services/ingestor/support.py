"""Helpers for the ingestor's tests: run it in-process, wait for a condition, read a topic."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from services.ingestor.binance import Backoff
from services.ingestor.ingest import IngestOptions
from services.ingestor.main import serve
from services.ingestor.resume import partitions_of
from services.sim import BinanceSim
from shared.config import Settings
from shared.invariants import check_invariants

# Short waits so a test spends its time on the behaviour, not on politeness towards Binance.
FAST = IngestOptions(backoff=Backoff(base=0.05, cap=0.5), idle_timeout=5.0)
STEP = 300_000  # 5m


def against(settings: Settings, sim: BinanceSim, **changes: Any) -> Settings:
    """The test's settings pointed at the stand-in."""
    return settings.model_copy(update={"binance_rest_url": sim.rest_url, "binance_ws_url": sim.ws_url, **changes})


@asynccontextmanager
async def running_ingestor(
    settings: Settings, *, options: IngestOptions = FAST, ingest: bool = True, record: bool = True
) -> AsyncIterator[asyncio.Task[None]]:
    """`serve()` in a task; stopped (as SIGTERM would) on exit, re-raising any failure."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, options=options, ingest=ingest, record=record))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, within: float = 60.0, task: asyncio.Task[Any] | None = None
) -> None:
    """Poll `check` until true; fail (naming `what`) after `within` seconds, or at once if `task` died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await check():
            return
        if task is not None and task.done():
            task.result()
            raise AssertionError(f"the service stopped while waiting for {what}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")


async def read_topic(settings: Settings, name: str) -> list[Any]:
    """Every record now in a topic (all partitions), oldest first per partition."""
    partitions = await partitions_of(settings.kafka, settings.topic(name))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        begins = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, begins[tp])
        records: list[Any] = []
        remaining = {tp for tp in partitions if ends[tp] > begins[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=5000)
            if not batch:
                break
            for tp, items in batch.items():
                records.extend(items)
                if items[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


async def topic_open_times(settings: Settings, name: str, symbol: str = "BTCUSDT") -> list[int]:
    records = await read_topic(settings, name)
    return [body["open_time"] for body in (json.loads(r.value) for r in records) if body["symbol"] == symbol]


async def stored_open_times(db: asyncpg.Connection, symbol: str = "BTCUSDT") -> list[int]:
    rows = await db.fetch("SELECT open_time FROM candles WHERE symbol = $1 ORDER BY open_time", symbol)
    return [r["open_time"] for r in rows]


async def stored_count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM candles"))


def steps(times: list[int]) -> set[int]:
    """The distinct differences between neighbours: {STEP} for a contiguous, duplicate-free series."""
    return {b - a for a, b in itertools.pairwise(times)}


async def assert_nothing_lost_or_doubled(db: asyncpg.Connection, symbol: str = "BTCUSDT") -> list[int]:
    """The project's data invariant over everything stored for `symbol`; returns the open times."""
    times = await stored_open_times(db, symbol)
    assert times, f"nothing stored for {symbol}"
    report = await check_invariants(db, symbol, "5m", STEP, times[0], times[-1])
    assert report.ok, str(report)
    return times
