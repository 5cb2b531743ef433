"""`candlecast gateway` with several worker processes on one port: each answers, and /metrics adds
up every worker's counts."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil

from shared.config import Settings
from testkit.metrics import sample_sum
from testkit.ports import free_port
from tests.services.gateway.conftest import gateway_env, service_process


async def test_two_workers_serve_one_port_and_metrics_add_up_across_them(gateway_settings: Settings,
                                                                         tmp_path: Path) -> None:
    port = free_port()
    env = {**gateway_env(gateway_settings, port), "CANDLECAST_GATEWAY_WORKERS": "2"}
    with service_process("gateway", env, port, tmp_path / "gateway.log") as proc:
        workers = [p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, [p.cmdline() for p in psutil.Process(proc.pid).children()]
        for _ in range(60):  # a new connection each: the kernel hands them to either worker
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                response = await client.get("/health")
                assert response.status_code == 200
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            text = (await client.get("/metrics")).text
    assert sample_sum(text, "candlecast_http_requests_total", route="/health", status="200") == 60
