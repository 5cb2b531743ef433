"""Gateway benchmark: requests/s and p50/p99 latency of `GET /series` (one day, 288 points) and
`GET /predictions/latest` under load, each beside its floor (asyncpg and orjson doing the
endpoint's own database reads and encoding in this process, no HTTP), and the latency of
`POST /predict`.

    .venv/bin/python -m bench.gateway_bench                    # wrk when installed, else a Python load generator
    .venv/bin/python -m bench.gateway_bench --seconds 20 --connections 64

The gateway runs as `candlecast gateway` (one uvicorn process, as deployed; then two; then one
that keeps no page or prediction between requests, `CANDLECAST_GATEWAY_CACHE_SECONDS=0`) on its own database
with a month of real 5m candles (../shared/data when present, else generated), a champion model
trained here for the benchmark (window 60, the default) with its series rows and live futures.
The load generator shares this machine's cores with the gateway and Postgres: the figures are
what one small box does end to end, not the gateway alone.
Prints a table and writes `bench/results/gateway.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import pandas as pd

from shared.config import PROJECT_ROOT, Settings
from shared.market.binance_csv import read_archive_csv
from testkit.flood import flood_from_another_process
from testkit.infra import drop_database, isolated_settings
from testkit.kafka import delete_topics
from testkit.ports import free_port
from testkit.services import ServiceProcess

RESULTS = Path(__file__).resolve().parent / "results" / "gateway.json"
ADMIN_TOKEN = "bench-admin-token"
DATA = PROJECT_ROOT.parent / "shared" / "data" / "BTCUSDT-5m-2024-09.csv"
COLUMNS = ["open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
           "taker_buy_base_volume", "taker_buy_quote_volume"]


def candles() -> tuple[pd.DataFrame, str]:
    if DATA.exists():
        return read_archive_csv(DATA), DATA.name
    from shared.model.synthetic import synthetic_candles

    return synthetic_candles(8640, seed=1), "generated (AR(1), 30 days)"


def train(frame: pd.DataFrame, model_dir: Path) -> Any:
    from shared.model.artifacts import save_model
    from shared.model.training import TrainConfig, train_model

    result = train_model(frame.iloc[-4000:].reset_index(drop=True), TrainConfig(epochs=2))
    save_model(result, model_dir, "BTCUSDT", "5m")
    return result


async def cleanup(settings: Settings) -> None:
    """The benchmark's database and topics go; nothing of it stays on the developer's stack."""
    await drop_database(settings.database)
    await delete_topics(settings)


async def prepare(settings: Settings, frame: pd.DataFrame, result: Any) -> None:
    from shared.model.metrics import finite_metrics

    conn = await asyncpg.connect(settings.database)
    try:
        records = [("BTCUSDT", "5m", *(int(r[c]) if c in ("open_time", "close_time", "trades") else float(r[c])
                                       for c in COLUMNS)) for r in frame.to_dict("records")]
        await conn.copy_records_to_table("candles", records=records, columns=["symbol", "interval", *COLUMNS])
        version = result.model.version
        await conn.execute(
            """INSERT INTO models (version, symbol, interval, data_start, data_end, test_start, metrics,
                   baseline_metrics, status, artifact_path, promoted_at)
               VALUES ($1, 'BTCUSDT', '5m', $2, $3, $4, $5, $6, 'champion', $7, now())""",
            version, result.data_start, result.data_end, result.test_start, json.dumps(finite_metrics(result.metrics)),
            json.dumps({k: finite_metrics(v) for k, v in result.baseline_metrics.items()}), str(result.model.path))
        # The champion's series over the whole month, with the model's own fast batch path.
        ends = np.arange(result.model.history_needed - 1, len(frame) - 1)
        predicted = result.model.predict_many(frame, ends)
        test_start = result.test_start or 0
        rows = [("BTCUSDT", "5m", p.target_time, version, p.open, p.high, p.low, p.close, p.amplitude, p.p_up,
                 "test" if p.target_time >= test_start else "train") for p in predicted]
        await conn.copy_records_to_table("series", records=rows, columns=[
            "symbol", "interval", "time", "model_version", "pred_open", "pred_high", "pred_low", "pred_close",
            "pred_amplitude", "p_up", "split"])
        last = predicted[-1]
        await conn.execute(
            """INSERT INTO futures (symbol, interval, time, base_time, pred_open, pred_high, pred_low, pred_close,
                   pred_amplitude, p_up, base_close, model_version)
               VALUES ('BTCUSDT', '5m', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            last.target_time, last.base_time, last.open, last.high, last.low, last.close, last.amplitude, last.p_up,
            last.base_close, version)
        # Statistics, as autovacuum would have them on a running system; without them the
        # planner joins a freshly loaded month with sequential scans.
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value if unit == "ms" else value * 1000

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": rps, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non_2xx": float(errors.group(1)) if errors else 0.0}


async def python_load(url: str, seconds: int, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await client.get(url)
            latencies.append(time.perf_counter() - started)
            failures += response.status_code != 200

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections), timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    ordered = sorted(latencies)
    return {"requests_per_s": len(ordered) / seconds, "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))], "non_2xx": float(failures)}


async def floor_load(work: Any, seconds: int, connections: int) -> dict[str, float]:
    """`work` (one request's database reads and encoding, no HTTP) from `connections` tasks at once."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await work()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(connections)))
    ordered = sorted(latencies)
    return {"requests_per_s": len(ordered) / seconds, "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))]}


async def floors(settings: Settings, day_start: int, seconds: int, connections: int) -> dict[str, Any]:
    """The floors, in the same run: asyncpg and orjson doing each endpoint's own database work and
    encoding in this process, with no HTTP, no framework and no gateway."""
    import orjson

    from services.gateway import queries

    pool = await asyncpg.create_pool(settings.database, min_size=4, max_size=16)
    paging = queries.Paging(day_start, None, 288)

    async def series() -> None:
        model = await queries.champion(pool, "BTCUSDT", "5m")
        assert model is not None
        found = await queries.series(pool, "BTCUSDT", "5m", model["version"], paging, model["test_start"],
                                     model["data_end"])
        orjson.dumps({"count": found.count})[:-1] + b',"items":' + found.items_json.encode() + b"}"

    async def latest() -> None:
        row = await queries.latest_prediction(pool, "BTCUSDT", "5m")
        orjson.dumps(dict(row or {}))

    try:
        return {"series_one_day": await floor_load(series, seconds, connections),
                "predictions_latest": await floor_load(latest, seconds, connections)}
    finally:
        await pool.close()


async def predict_latency(base: str, history: list[dict[str, Any]], horizon: int, n: int) -> dict[str, float]:
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(n + 5):
            started = time.perf_counter()
            response = await client.post(f"{base}/predict", json={"candles": history, "horizon": horizon})
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if i >= 5:  # the first calls load the model
                times.append(1000 * elapsed)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[int(0.99 * (len(times) - 1))],
            "mean_ms": statistics.fmean(times), "requests": float(n)}


async def read_latency(base: str, paths: tuple[str, ...], until: asyncio.Event | None, n: int = 200
                       ) -> dict[str, dict[str, float]]:
    """Sequential GETs of each path (one client each), `n` of them or until `until` is set."""
    async def one(client: httpx.AsyncClient, path: str) -> dict[str, float]:
        times: list[float] = []
        while (until is None and len(times) < n) or (until is not None and not until.is_set()):
            started = time.perf_counter()
            response = await client.get(base + path)
            times.append(1000 * (time.perf_counter() - started))
            response.raise_for_status()
        times.sort()
        return {"n": float(len(times)), "p50_ms": statistics.median(times),
                "p99_ms": times[int(0.99 * (len(times) - 1))], "max_ms": times[-1]}

    async with httpx.AsyncClient(timeout=60) as a, httpx.AsyncClient(timeout=60) as b:
        results = await asyncio.gather(one(a, paths[0]), one(b, paths[1]))
    return dict(zip(paths, results, strict=True))


async def flood(base: str, history: list[dict[str, Any]], requests: int = 200) -> dict[str, Any]:
    """`requests` concurrent POST /predict with horizon 12 (the gateway's default limits on), sent
    from a process of their own, while GET /health and GET /predictions/latest are timed here;
    beside them, the same reads without it."""
    paths = ("/health", "/predictions/latest")
    quiet = await read_latency(base, paths, None)
    done = asyncio.Event()
    reads = asyncio.create_task(read_latency(base, paths, done))
    try:
        summary = await flood_from_another_process(base, history, requests, horizon=12)
    finally:
        done.set()
    during = await reads
    codes = summary["codes"]
    answered, refused = codes.get("200", 0), codes.get("429", 0)
    return {"requests": requests, "answered_200": answered, "answered_429": refused,
            "other": requests - answered - refused, "flood_seconds": round(summary["seconds"], 2),
            **{f"during{path.replace('/', '_')}": during[path] for path in paths},
            **{f"floor{path.replace('/', '_')}": quiet[path] for path in paths}}


async def run(seconds: int, connections: int, predict_n: int) -> dict[str, Any]:
    frame, source = candles()
    model_dir = Path(tempfile.mkdtemp(prefix="bench-gateway-models-"))
    started = time.perf_counter()
    result = train(frame, model_dir)
    train_seconds = time.perf_counter() - started
    port = free_port()
    # The per-client limit of POST /predict would measure the limiter, not the prediction: lifted here.
    settings = await isolated_settings(Settings(), admin_token=ADMIN_TOKEN, model_dir=model_dir, gateway_port=port,
                                       predict_rate_per_client=1e6, predict_burst=1_000_000)
    base = f"http://127.0.0.1:{port}"
    day_start = int(frame["open_time"].iloc[-288])
    history = frame.iloc[-120:][COLUMNS].to_dict("records")
    generator = "wrk" if shutil.which("wrk") else "python (httpx)"
    figures: dict[str, Any] = {}
    gateway = ServiceProcess("gateway", settings, Path(tempfile.mkdtemp(prefix="bench-gateway-")))
    try:
        await prepare(settings, frame, result)
        # One process, then one per core, then one process that keeps no page between requests
        # (what a page costs when it is not the one every viewer asks for).
        for suffix, workers, keep in (("", 1, 1.0), ("_2_workers", 2, 1.0), ("_uncached", 1, 0.0)):
            if suffix:
                gateway.stop()
                gateway = ServiceProcess("gateway", settings.model_copy(update={
                    "gateway_workers": workers, "gateway_cache_seconds": keep}),
                    Path(tempfile.mkdtemp(prefix="bench-gateway-")))
            await gateway.started(within=30)
            # Not measured: the first seconds after a start, while the gateway loads the champion
            # (`warm`: seconds of held GIL; a POST /predict waits for it) and fills its pools.
            await predict_latency(base, history, 1, 1)
            if generator == "wrk":
                wrk(f"{base}/series?start={day_start}&limit=288", 3, connections)
            for name, path in (("series_one_day", f"/series?start={day_start}&limit=288"),
                               ("predictions_latest", "/predictions/latest")):
                async with httpx.AsyncClient() as client:
                    body = (await client.get(base + path)).json()
                if name == "series_one_day":
                    assert body["count"] == 288, body
                url = base + path
                figures[name + suffix] = (wrk(url, seconds, connections) if generator == "wrk"
                                          else await python_load(url, seconds, connections))
        gateway.stop()
        gateway = ServiceProcess("gateway", settings, Path(tempfile.mkdtemp(prefix="bench-gateway-")))
        await gateway.started(within=30)
        floor = await floors(settings, day_start, seconds, connections)
        for name, measured in floor.items():
            for suffix in ("", "_2_workers", "_uncached"):
                figures[name + suffix]["floor_asyncpg_orjson"] = measured
                figures[name + suffix]["ratio_to_floor"] = round(
                    figures[name + suffix]["requests_per_s"] / measured["requests_per_s"], 3)
        figures["predict_120_candles"] = await predict_latency(base, history, 1, predict_n)
        figures["predict_horizon_12"] = await predict_latency(base, history, 12, max(20, predict_n // 5))
        gateway.stop()
        # The flood on a gateway with the default limits of POST /predict (2 in flight, 5/s per client).
        limited = settings.model_copy(update={"predict_rate_per_client": Settings().predict_rate_per_client,
                                              "predict_burst": Settings().predict_burst})
        gateway = ServiceProcess("gateway", limited, Path(tempfile.mkdtemp(prefix="bench-gateway-")))
        await gateway.started(within=30)
        await predict_latency(base, history, 1, 1)  # the first loads the model: not part of the flood
        figures["flood_predict_200"] = await flood(base, history)
    finally:
        gateway.stop()
        shutil.rmtree(model_dir, ignore_errors=True)
        await cleanup(settings)
    return {"data": source, "load_generator": generator, "seconds": seconds, "connections": connections,
            "model_train_seconds": train_seconds, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="load duration per endpoint")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--predict-requests", type=int, default=200, help="sequential POST /predict calls")
    args = parser.parse_args()
    results = asyncio.run(run(args.seconds, args.connections, args.predict_requests))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\ngateway benchmark ({results['load_generator']}, {args.connections} connections, "
          f"{args.seconds} s per endpoint; data {results['data']})")
    print(f"{'':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("series_one_day", "series_one_day_2_workers", "series_one_day_uncached", "predictions_latest",
                 "predictions_latest_2_workers", "predictions_latest_uncached", "predict_120_candles",
                 "predict_horizon_12"):
        row = results[name]
        rps = f"{row['requests_per_s']:>10.0f}" if "requests_per_s" in row else f"{'(serial)':>10}"
        print(f"{name:<30}{rps}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
        if "floor_asyncpg_orjson" in row:
            floor = row["floor_asyncpg_orjson"]
            print(f"{'  floor: asyncpg+orjson':<30}{floor['requests_per_s']:>10.0f}{floor['p50_ms']:>10.2f}"
                  f"{floor['p99_ms']:>10.2f}   ratio {row['ratio_to_floor']}")
    f = results["flood_predict_200"]
    print(f"flood: {f['requests']} concurrent POST /predict (horizon 12): {f['answered_200']} answered, "
          f"{f['answered_429']} refused (429) in {f['flood_seconds']} s")
    for path in ("health", "predictions_latest"):
        during, floor = f[f"during_{path}"], f[f"floor_{path}"]
        print(f"  GET /{path.replace('_', '/')} during: p50 {during['p50_ms']:.1f} p99 {during['p99_ms']:.1f} ms "
              f"(n {during['n']:.0f}); without the flood: p50 {floor['p50_ms']:.1f} p99 {floor['p99_ms']:.1f} ms")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
