"""Debian's Prometheus scrapes the running services, fed by the Binance stand-in with a champion
in place; every PromQL expression of the Grafana dashboards evaluates without error and returns
data, except the few named in `EXPECTED_EMPTY` with why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from shared.config import Settings
from shared.messaging import topics
from shared.storage.models_registry import ModelRecord, insert_candidate, promote
from testkit.kafka import publish_raw
from tests.deploy.dashboards import PROMETHEUS_CONFIG, metric_names, promql, queries
from tests.services.gateway.conftest import ADMIN_TOKEN, free_port, gateway_env, service_process
from tests.services.gateway.tools import require_program
from tests.services.predictor.support import INTERVAL, SYMBOL

SERVICES = ("gateway", "ingestor", "predictor", "trainer")

#: Panel title -> why its expressions have no data in this test (nothing else may be empty).
EXPECTED_EMPTY: dict[str, str] = {}


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


async def test_prometheus_scrapes_the_services_and_every_dashboard_expression_returns_data(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path], tmp_path: Path
) -> None:
    prometheus = require_program("prometheus")
    meta = json.loads((tiny_models[0] / "metadata.json").read_text())
    record = ModelRecord(version=tiny_models[0].name, symbol=SYMBOL, interval=INTERVAL,
                         artifact_path=str(tiny_models[0]), metrics=meta["metrics"], data_start=meta["data_start"],
                         data_end=meta["data_end"], test_start=meta["test_start"])
    await insert_candidate(db, record)
    await promote(db, record.version)
    ports = {name: free_port() for name in (*SERVICES, "prometheus", "sim")}
    env = gateway_env(settings.model_copy(update={"admin_token": ADMIN_TOKEN}), ports["gateway"])
    env.update({
        "CANDLECAST_INGESTOR_METRICS_PORT": str(ports["ingestor"]),
        "CANDLECAST_PREDICTOR_METRICS_PORT": str(ports["predictor"]),
        "CANDLECAST_TRAINER_METRICS_PORT": str(ports["trainer"]),
        "CANDLECAST_SIM_PORT": str(ports["sim"]),
        "CANDLECAST_DATA_DIR": str(tmp_path / "data"),
        # The stand-in (generated data, a 5m candle every 0.5 s): nothing here reaches the real Binance.
        "CANDLECAST_BINANCE_REST_URL": f"http://127.0.0.1:{ports['sim']}",
        "CANDLECAST_BINANCE_WS_URL": f"ws://127.0.0.1:{ports['sim']}",
        "CANDLECAST_BACKFILL_DAYS": "2",
        "CANDLECAST_CONSUMER_LAG_SECONDS": "1",
        "CANDLECAST_TRAIN_CONFIG": json.dumps({"window": 12, "units": 4, "epochs": 1, "batch_size": 128}),
    })
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(local_config(ports)))
    base = f"http://127.0.0.1:{ports['prometheus']}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(service_process("sim", env, ports["sim"], tmp_path / "sim.log"))
        for name in SERVICES:
            stack.enter_context(service_process(name, env, ports[name], tmp_path / f"{name}.log"))
        log = stack.enter_context((tmp_path / "prometheus.log").open("wb"))
        proc = start_prometheus(prometheus, config, tmp_path / "tsdb", ports["prometheus"], log)
        stack.callback(proc.wait, 30)
        stack.callback(proc.terminate)
        await publish_raw(settings, topics.CANDLES, [b"not a candle"], key=SYMBOL.encode())  # one dead letter
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

            async def pipeline_seen() -> bool:
                await targets_up()  # keeps the gateway's request rate alive
                needed = ('count_over_time(process_cpu_seconds_total{job="gateway"}[1m]) >= 4',
                          "candlecast_candle_to_prediction_seconds_count > 0",
                          "candlecast_rolling_mape", "candlecast_dead_lettered_total",
                          'candlecast_consumer_lag{service="predictor"}',
                          # increase() needs two samples: the trainer's counters scraped twice at least.
                          "count_over_time(candlecast_promotions_total[1m]) >= 2",
                          "count_over_time(candlecast_rejected_candidates_total[1m]) >= 2")
                return all([await samples(expr) for expr in needed])

            logs = ", ".join(str(tmp_path / f"{n}.log") for n in (*SERVICES, "sim"))
            await _poll(pipeline_seen, f"live predictions, filled rows and a dead letter scraped ({logs})", 180)
            names = set((await api.get("/api/v1/label/__name__/values")).json()["data"])
            prom_queries = [q for q in queries() if q.datasource == "prometheus"]
            assert len(prom_queries) >= 15
            assert set(EXPECTED_EMPTY) <= {q.panel for q in prom_queries}
            errors, empty = [], []
            for query in prom_queries:
                expr = promql(query.text)
                body = (await api.get("/api/v1/query", params={"query": expr})).json()
                if body["status"] != "success":
                    errors.append(f"{query}: {body.get('error')}")
                elif not body["data"]["result"] and query.panel not in EXPECTED_EMPTY:
                    missing = sorted(metric_names(expr) - names)
                    empty.append(f"{query} (never scraped: {missing or 'none'})")
            assert not errors, "\n".join(errors)
            assert not empty, "expressions that returned nothing:\n" + "\n".join(empty)
            # Every service's own process metrics are scraped under its job.
            jobs = {r["metric"]["job"] for r in await samples("process_resident_memory_bytes")}
            assert set(SERVICES) <= jobs
