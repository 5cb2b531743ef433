"""`candlecast sim` as the process `make demo` starts: it serves, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from typing import Any

import aiohttp
import httpx

from shared.config import PROJECT_ROOT
from shared.infra.process import port_open, wait_until


def test_the_command_serves_generated_data_until_terminated(unused_tcp_port: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "sim", "--port", str(unused_tcp_port), "--generate-days", "100",
         "--symbols", "BTCUSDT,ETHUSDT", "--interval", "5m", "--speed", "600"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", unused_tcp_port) or proc.poll() is not None, 60, "the stand-in")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        base = f"http://127.0.0.1:{unused_tcp_port}"
        clock = httpx.get(f"{base}/_sim/clock").json()
        assert clock["symbols"] == ["BTCUSDT", "ETHUSDT"] and clock["speed"] == 600
        assert clock["now"] - clock["data_start"] >= 91 * 86_400_000  # room for a 90-day backfill
        rows = httpx.get(f"{base}/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "5m", "limit": 2}).json()
        assert len(rows) == 2 and rows[1][0] - rows[0][0] == 300_000
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "Binance stand-in on" in output


async def _closes(base: str, names: str, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://{base}/stream?streams={names}") as ws:
        while len(events) < count:
            events.append(json.loads((await ws.receive(timeout=10)).data)["data"]["k"])
    return events


def test_burst_mode_closes_every_generated_symbol_at_the_same_instant(unused_tcp_port: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "sim", "--port", str(unused_tcp_port), "--generate-days", "2",
         "--symbols", "50", "--interval", "1m", "--burst", "--speed", "600", "--start", "+1d"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", unused_tcp_port) or proc.poll() is not None, 60, "the stand-in")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        base = f"127.0.0.1:{unused_tcp_port}"
        symbols = httpx.get(f"http://{base}/_sim/clock").json()["symbols"]
        assert symbols == [f"C{i:04d}USDT" for i in range(1, 51)]
        # Four closes of 50 (a 1m candle every 0.1 s at 600x).
        events = asyncio.run(_closes(base, "/".join(f"{s.lower()}@kline_1m" for s in symbols), 200))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert all(k["x"] for k in events)  # closes only: no in-progress updates
    by_candle: dict[int, set[str]] = {}
    for k in events:
        by_candle.setdefault(k["t"], set()).add(k["s"])
    assert [len(s) for s in by_candle.values()] == [50] * 4  # each candle: every symbol, in one burst
