"""Streams benchmark: the demo's services with several intervals at once, as real processes.

    .venv/bin/python -m bench.streams_bench                       # both configurations
    .venv/bin/python -m bench.streams_bench --only 5m,1d --live-seconds 120

Two configurations, each on the stand-in at 600x with the ingestor, predictor and trainer of
`make demo` in a database and topics of their own (removed afterwards):

1. `5m,1d` on the real archives (`../shared/data`, and its `daily/` 1d files from 2017): what
   `make demo` runs.
2. `1m,5m,15m,1h,4h,1d` on generated 1m data (the archives' finest interval is 5m): 400 days, the
   clock 380 days in, `train_min_candles` 300 so the 1d stream (380 candles) can train.

Figures per stream: seconds from the services' start to its first prediction (backfill, first
training, model load), beside its floor in the same run, the training run alone (`job_logs`);
and the live close -> prediction published (on the stand-in's clock turned into wall time)
p50/p99, beside its floor, the champion's single-window inference p50 measured in this process.
The trainer trains `--kinds` (default gbm: the demo's LSTM adds its own minutes per stream).
Prints a table and writes `bench/results/streams.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg

from bench.__main__ import machine
from bench.common import DEFAULT_DATA, percentiles, print_rows, write_result
from bench.system_bench import fresh, sim_clock
from shared.config import Settings, interval_ms
from shared.infra.stack import demo_folders
from shared.messaging import topics
from testkit.kafka import read_topic
from testkit.services import ServiceProcess, with_free_ports

CONFIGS = {"5m,1d": "archives", "1m,5m,15m,1h,4h,1d": "generated"}


async def _first_predictions(settings: Settings) -> tuple[dict[str, int], dict[str, float]]:
    """Futures rows per interval, and each stream's first training's seconds (success runs)."""
    conn = await asyncpg.connect(settings.database)
    try:
        rows = await conn.fetch("SELECT interval, count(*) AS n FROM futures GROUP BY interval")
        runs = await conn.fetch(
            "SELECT interval, min(extract(epoch FROM finished_at - started_at)) AS s FROM job_logs "
            "WHERE job_name = 'train' AND status = 'success' GROUP BY interval")
    finally:
        await conn.close()
    return {r["interval"]: int(r["n"]) for r in rows}, {r["interval"]: float(r["s"]) for r in runs}


def _inference_floor(settings: Settings, intervals: list[str]) -> dict[str, float]:
    """Single-window inference p50 (ms) of each stream's champion on its stored candles."""
    from shared.model.artifacts import load_model
    from shared.storage.candle_store import load_last_candles

    async def champions() -> dict[str, tuple[str, Any]]:
        conn = await asyncpg.connect(settings.database)
        try:
            found = {}
            for interval in intervals:
                row = await conn.fetchrow("SELECT artifact_path FROM models WHERE interval = $1 AND "
                                          "status = 'champion'", interval)
                if row is not None:
                    found[interval] = (row["artifact_path"], await load_last_candles(conn, "BTCUSDT", interval, 400))
            return found
        finally:
            await conn.close()

    floors = {}
    for interval, (path, candles) in asyncio.run(champions()).items():
        model = load_model(path)
        frame = candles.iloc[-model.history_needed:]
        model.predict_next(frame)
        times = []
        for _ in range(200):
            started = time.perf_counter()
            model.predict_next(frame)
            times.append((time.perf_counter() - started) * 1000)
        floors[interval] = percentiles(times, [0.99])["p50"]
    return floors


async def run_config(base: Settings, logs: Path, intervals: list[str], source: str, kinds: str,
                     live_seconds: float) -> dict[str, Any]:
    async with fresh(base) as settings:
        config = with_free_ports(settings)
        port = config.sim_port
        changes: dict[str, Any] = {
            "symbols": ["BTCUSDT"], "intervals": intervals, "interval": intervals[0], "model_kinds": kinds.split(","),
            "binance_rest_url": f"http://127.0.0.1:{port}", "binance_ws_url": f"ws://127.0.0.1:{port}",
        }
        if source == "archives":
            sim_args = ["--csv-dir", *demo_folders(DEFAULT_DATA)]
        else:
            sim_args = ["--generate-days", "400", "--interval", "1m", "--start", "+380d"]
            changes["train_min_candles"] = 300
        config = config.model_copy(update=changes)
        sim = ServiceProcess("sim", config, logs, args=[*sim_args, "--speed", "600", "--port", str(port)])
        services = [ServiceProcess(name, config, logs) for name in ("ingestor", "predictor", "trainer")]
        first: dict[str, float] = {}
        try:
            await sim.started()
            started = time.monotonic()
            for process in services:
                process.start()
            while len(first) < len(intervals):
                for process in (sim, *services):
                    process.check_alive()
                counts, _ = await _first_predictions(config)
                for interval in intervals:
                    if counts.get(interval) and interval not in first:
                        first[interval] = round(time.monotonic() - started, 1)
                        print(f"  {interval}: first prediction after {first[interval]} s", flush=True)
                if time.monotonic() - started > 1800:
                    raise TimeoutError(f"no first prediction within 30 min for {set(intervals) - set(first)}")
                await asyncio.sleep(1.0)
            live_wall, live_sim, speed = await sim_clock(port)
            await asyncio.sleep(live_seconds)
            _, end_sim, _ = await sim_clock(port)
            _, training = await _first_predictions(config)
            for process in services:
                await process.terminate()
            await sim.terminate()
        finally:
            for process in (sim, *services):
                process.stop()
        latency: dict[str, list[float]] = defaultdict(list)
        for record in await read_topic(config, topics.PREDICTIONS, within=120):
            body = json.loads(record.value)
            if body.get("kind") != "prediction":
                continue
            closed = body["base_time"] + interval_ms(body["interval"])
            if live_sim < closed <= end_sim:
                latency[body["interval"]].append(record.timestamp - (live_wall * 1000 + (closed - live_sim) / speed))
        floors = await asyncio.to_thread(_inference_floor, config, intervals)
        streams = {}
        for interval in intervals:
            values = latency.get(interval, [])
            live = {"n": len(values), **(percentiles(values, [0.99]) if values else {})}
            train_s = round(training.get(interval, float("nan")), 1)
            streams[interval] = {
                "first_prediction_s": first[interval],
                "floor_first_training_s": train_s,
                "ratio_first_prediction_to_training": round(first[interval] / train_s, 1) if train_s else None,
                "live_close_to_prediction_ms": live,
                "floor_inference_p50_ms": floors.get(interval),
                "ratio_live_p50_to_inference": round(live["p50"] / floors[interval], 1)
                if values and floors.get(interval) else None,
            }
        return {"intervals": intervals, "data": source, "kinds": kinds, "speed": speed,
                "live_seconds": live_seconds, "streams": streams}


def print_table(result: dict[str, Any]) -> None:
    rows = [("machine", result["machine"])]
    for name, config in result["configs"].items():
        rows.append((f"[{name}]", f"{config['data']} data, kinds {config['kinds']}, {config['speed']:g}x, "
                                  f"{config['live_seconds']:g} s live"))
        for interval, s in config["streams"].items():
            live = s["live_close_to_prediction_ms"]
            rows.append((f"  {interval} first prediction",
                         f"{s['first_prediction_s']} s (first training alone {s['floor_first_training_s']} s, "
                         f"x{s['ratio_first_prediction_to_training']})"))
            rows.append((f"  {interval} live close->prediction",
                         f"p50 {live.get('p50')} ms, p99 {live.get('p99')} ms, n {live['n']} "
                         f"(inference alone p50 {s['floor_inference_p50_ms']} ms, "
                         f"x{s['ratio_live_p50_to_inference']})"))
    print_rows(rows)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings()
    scratch = Path(tempfile.mkdtemp(prefix="candlecast-streams-bench-"))
    try:
        configs = {}
        for name, source in CONFIGS.items():
            if args.only and name != args.only:
                continue
            if source == "archives" and not any(DEFAULT_DATA.glob("*-5m-*.csv")):
                print(f"skipping {name}: no 5m archives in {DEFAULT_DATA}")
                continue
            print(f"=== {name} ({source})", flush=True)
            configs[name] = await run_config(base, scratch, name.split(","), source, args.kinds, args.live_seconds)
        return {"machine": machine(), "configs": configs}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(CONFIGS), help="one configuration")
    parser.add_argument("--kinds", default="gbm", help="model kinds the trainer trains (default gbm)")
    parser.add_argument("--live-seconds", type=float, default=240.0, help="live window measured after every "
                        "stream's first prediction (at 600x, 240 s are 40 hours: 1-2 daily candles)")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print_table(result)
    write_result("streams", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
