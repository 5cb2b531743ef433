"""Fault 4: the websocket goes silent (no data, no close); the ingestor notices, reconnects, fills the gap.

Two kinds of silence. A dead network path (every byte held, both ways) is what heartbeats catch.
A stalled stream on a healthy connection (pings answered, no data) only a timeout on *data*
catches. The ingestor runs in this process, because its timeouts are `IngestOptions` rather than
settings: scaled down from Binance's (60 s without data, a 20 s heartbeat) to 4 s and 1 s, the
silence from two minutes to 12 s, the same three timeouts' worth.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from services.ingestor.binance import Backoff
from services.ingestor.main import serve
from services.ingestor.options import IngestOptions
from shared.config import Settings
from testkit.netfaults import TcpProxy, WebsocketRelay
from testkit.waiting import eventually
from tests.faults.support import against, binance, settled, sim_now

OPTIONS = IngestOptions(backoff=Backoff(base=0.05, cap=0.5), idle_timeout=4.0, heartbeat=1.0)
SILENCE = 12.0


class _Task:
    """The in-process ingestor as something `eventually` can watch."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task

    def check_alive(self) -> None:
        if self.task.done():
            self.task.result()
            raise AssertionError("the ingestor stopped")


@contextlib.asynccontextmanager
async def ingesting(settings: Settings) -> AsyncIterator[_Task]:
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, options=OPTIONS))
    try:
        yield _Task(task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def _more(count: int, than: int) -> bool:
    return count > than


async def test_a_dead_network_path_is_noticed_and_the_gap_filled(settings: Settings, db: asyncpg.Connection) -> None:
    async with binance() as sim:
        host, port = sim.ws_url.removeprefix("ws://").split(":")
        proxy = await TcpProxy(host, int(port)).start()
        try:
            config = against(settings, sim, binance_ws_url=f"ws://127.0.0.1:{proxy.port}")
            async with ingesting(config) as ingestor:
                await settled(db, until=await sim_now(sim), within=60, watch=[ingestor], predicted=False)
                proxy.freeze()
                silent_from = await sim_now(sim)
                await eventually(lambda: _more(proxy.connections, 1), "a new connection while the path is dead",
                                 within=4 * OPTIONS.idle_timeout, watch=[ingestor])
                await asyncio.sleep(SILENCE)
                proxy.thaw()
                final = await settled(db, until=await sim_now(sim) + 5 * 300_000, within=60, watch=[ingestor],
                                      predicted=False)
        finally:
            await proxy.stop()
    assert final.ok and final.candles > 0 and silent_from < (await sim_now(sim))


async def test_a_stalled_stream_on_a_live_connection_is_noticed_and_the_gap_filled(
    settings: Settings, db: asyncpg.Connection
) -> None:
    async with binance() as sim:
        relay = await WebsocketRelay(sim.ws_url).start()
        try:
            config = against(settings, sim, binance_ws_url=relay.url)
            async with ingesting(config) as ingestor:
                await settled(db, until=await sim_now(sim), within=60, watch=[ingestor], predicted=False)
                relay.quiet()
                await eventually(lambda: _more(relay.connections, 1), "a new connection while the stream is quiet",
                                 within=4 * OPTIONS.idle_timeout, watch=[ingestor])
                await asyncio.sleep(SILENCE)
                relay.speak()
                final = await settled(db, until=await sim_now(sim) + 5 * 300_000, within=60, watch=[ingestor],
                                      predicted=False)
        finally:
            await relay.stop()
    assert final.ok and final.candles > 0
