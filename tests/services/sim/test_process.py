"""`candlecast sim` as the process `make demo` starts: it serves, and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

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
