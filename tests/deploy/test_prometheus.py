"""Debian's Prometheus scrapes the running services; every PromQL expression of the Grafana
dashboards evaluates without error, and those on metrics of running parts return data."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from shared.config import Settings
from tests.deploy.dashboards import PROMETHEUS_CONFIG, metric_names, promql, queries
from tests.services.gateway.conftest import ADMIN_TOKEN, free_port, gateway_env, service_process
from tests.services.gateway.tools import require_program

SERVICES = ("gateway", "ingestor", "predictor", "trainer")


def test_the_shipped_config_passes_promtool() -> None:
    promtool = require_program("promtool")
    result = subprocess.run([promtool, "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def local_config(ports: dict[str, int]) -> dict[str, Any]:
    """The shipped config, pointed at this machine's ports and scraping every second."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {*SERVICES, "prometheus"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    return config


def start_prometheus(binary: str, config: Path, storage: Path, port: int, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )


async def _poll(check: Any, what: str, seconds: float = 90.0) -> Any:
    for _ in range(int(seconds / 0.5)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_prometheus_scrapes_the_services_and_every_dashboard_expression_evaluates(
    settings: Settings, tmp_path: Path
) -> None:
    prometheus = require_program("prometheus")
    ports = {name: free_port() for name in (*SERVICES, "prometheus")}
    env = gateway_env(settings.model_copy(update={"admin_token": ADMIN_TOKEN}), ports["gateway"])
    env.update({
        "CANDLECAST_INGESTOR_METRICS_PORT": str(ports["ingestor"]),
        "CANDLECAST_PREDICTOR_METRICS_PORT": str(ports["predictor"]),
        "CANDLECAST_TRAINER_METRICS_PORT": str(ports["trainer"]),
        "CANDLECAST_DATA_DIR": str(tmp_path / "data"),
        # Nothing here may reach the real Binance: a closed local port fails at once.
        "CANDLECAST_BINANCE_REST_URL": f"http://127.0.0.1:{free_port()}",
        "CANDLECAST_BINANCE_WS_URL": f"ws://127.0.0.1:{free_port()}",
    })
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(local_config(ports)))
    base = f"http://127.0.0.1:{ports['prometheus']}"
    with contextlib.ExitStack() as stack:
        for name in SERVICES:
            stack.enter_context(service_process(name, env, ports[name], tmp_path / f"{name}.log"))
        log = stack.enter_context((tmp_path / "prometheus.log").open("wb"))
        proc = start_prometheus(prometheus, config, tmp_path / "tsdb", ports["prometheus"], log)
        stack.callback(proc.wait, 30)
        stack.callback(proc.terminate)
        async with httpx.AsyncClient(base_url=base, timeout=10) as api:

            async def targets_up() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    # Traffic for the gateway's request metrics, between scrapes.
                    async with httpx.AsyncClient() as gateway:
                        for path in ("/health", "/candles", "/nowhere"):
                            await gateway.get(f"http://127.0.0.1:{ports['gateway']}{path}")
                    active = (await api.get("/api/v1/targets")).json()["data"]["activeTargets"]
                    return len(active) == 5 and all(t["health"] == "up" for t in active)
                return False

            await _poll(targets_up, f"all five targets up ({(tmp_path / 'prometheus.log')})")

            async def samples(expr: str) -> list[Any]:
                body = (await api.get("/api/v1/query", params={"query": expr})).json()
                assert body["status"] == "success", body
                result: list[Any] = body["data"]["result"]
                return result

            async def enough_history() -> bool:
                rows = await samples('count_over_time(process_cpu_seconds_total{job="gateway"}[1m])')
                return bool(rows) and float(rows[0]["value"][1]) >= 4

            await _poll(enough_history, "four scrapes of the gateway")
            names = set((await api.get("/api/v1/label/__name__/values")).json()["data"])
            assert {"candlecast_http_requests_total", "candlecast_http_request_seconds_bucket",
                    "process_resident_memory_bytes"} <= names
            prom_queries = [q for q in queries() if q.datasource == "prometheus"]
            assert len(prom_queries) >= 15
            errors, empty, with_data = [], [], 0
            for query in prom_queries:
                expr = promql(query.text)
                body = (await api.get("/api/v1/query", params={"query": expr})).json()
                if body["status"] != "success":
                    errors.append(f"{query}: {body.get('error')}")
                    continue
                running = metric_names(expr) <= names
                if running:
                    if body["data"]["result"]:
                        with_data += 1
                    else:
                        empty.append(str(query))
            assert not errors, "\n".join(errors)
            assert not empty, "expressions on scraped metrics returned nothing:\n" + "\n".join(empty)
            assert with_data >= 5  # gateway rates and latency, CPU, memory, targets up
            # Every service's own process metrics are scraped under its job.
            jobs = {r["metric"]["job"] for r in await samples("process_resident_memory_bytes")}
            assert set(SERVICES) <= jobs
