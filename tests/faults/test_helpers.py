"""The fault-test helpers themselves (`testkit`): each does what the fault tests rely on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from services.sim import BinanceSim, Market
from shared.config import PROJECT_ROOT, Settings
from shared.messaging import topics
from shared.messaging.topics import partitions
from testkit.infra import ThrowawayInfra
from testkit.netfaults import TcpProxy, WebsocketRelay
from testkit.services import settings_env
from testkit.waiting import eventually
from tests.faults.conftest import Spawn


async def test_a_service_process_sees_exactly_the_test_settings(settings: Settings, tmp_path: Path) -> None:
    odd = settings.model_copy(update={
        "symbols": ["BTCUSDT", "ETHUSDT"], "cors_origins": ["https://a.example"], "train_config": {"epochs": 2},
        "publish_forming_candles": False, "drift_ratio_threshold": 1.5, "model_dir": tmp_path / "m",
    })
    code = "from shared.config import get_settings; print(get_settings().model_dump_json())"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=settings_env(odd), cwd=PROJECT_ROOT,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert json.loads(out) == json.loads(odd.model_dump_json())


async def test_a_service_process_is_stopped_killed_and_restarted(settings: Settings, spawn: Spawn) -> None:
    sim = spawn("sim", settings, args=["--generate-days", "2"])
    sim.args += ["--port", str(sim.port)]
    await sim.started()
    assert await sim.terminate() == 0
    await sim.started()
    assert sim.kill() == -signal.SIGKILL
    assert sim.starts == 2 and sim.log_text().count("===== start") == 2

    await sim.started()
    assert sim.pid is not None
    os.kill(sim.pid, signal.SIGKILL)  # dies behind the test's back
    await asyncio.to_thread(sim.proc.wait, 10)  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="exited with code -9"):
        sim.check_alive()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_the_tcp_proxy_freezes_thaws_and_cuts() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = await TcpProxy("127.0.0.1", server.sockets[0].getsockname()[1]).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"one")
        assert await asyncio.wait_for(reader.readexactly(3), 10) == b"one"
        proxy.freeze()
        writer.write(b"two")
        echoed = asyncio.ensure_future(reader.readexactly(3))
        done, _ = await asyncio.wait({echoed}, timeout=1.0)
        assert not done and not reader.at_eof()  # held, not closed
        proxy.thaw()
        assert await asyncio.wait_for(echoed, 10) == b"two"
        proxy.cut()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert proxy.connections == 1
    finally:
        await proxy.stop()
        server.close()


async def test_the_websocket_relay_goes_quiet_but_stays_open() -> None:
    market = Market.generated(["BTCUSDT"], "5m", days=3)
    async with BinanceSim(market, speed=600, start_ms=market.start_ms + 86_400_000) as sim:
        relay = await WebsocketRelay(sim.ws_url).start()
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(
                f"{relay.url}/stream?streams=btcusdt@kline_5m", heartbeat=0.5
            ) as ws:
                assert json.loads((await ws.receive(timeout=10)).data)["data"]["e"] == "kline"
                relay.quiet()
                await eventually(lambda: _true(relay.dropped >= 5), "the relay dropping messages", within=20)
                # An outer deadline: ws.receive(timeout=...) restarts its timer on every pong.
                with pytest.raises(TimeoutError):
                    for _ in range(100):
                        await asyncio.wait_for(ws.receive(), 0.5)  # what was on its way before
                dropped = relay.dropped
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ws.receive(), 2.0)  # pings and pongs flow (heartbeat 0.5 s), data not
                assert relay.dropped > dropped and not ws.closed
                relay.speak()
                assert json.loads((await ws.receive(timeout=10)).data)["data"]["e"] == "kline"
            assert relay.connections == 1
        finally:
            await relay.stop()


async def _true(value: bool) -> bool:
    return value


async def test_the_throwaway_servers_are_a_test_s_own(throwaway: ThrowawayInfra, throwaway_settings: Settings,
                                                       base_settings: Settings) -> None:
    assert throwaway_settings.kafka != base_settings.kafka
    assert throwaway_settings.database.split("/")[2] != base_settings.database.split("/")[2]
    assert await partitions(throwaway_settings.kafka, throwaway_settings.topic(topics.CANDLES))
    conn = await asyncpg.connect(throwaway_settings.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM candles") == 0
    finally:
        await conn.close()
