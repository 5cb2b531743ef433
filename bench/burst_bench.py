"""Burst benchmark: N symbols' 1m candles closing at the same instant, as Binance closes them,
through one ingestor and one predictor as real processes.

    .venv/bin/python -m bench.burst_bench                      # 400 symbols, 20 bursts
    .venv/bin/python -m bench.burst_bench --symbols 100 --bursts 10

The stand-in (`candlecast sim --symbols N --interval 1m --burst`) closes every symbol's candle at
once with no in-progress updates; its clock runs at `--speed` (10: a burst every 6 s, so each
burst is handled before the next; at 30, a burst every 2 s, one predictor fell behind for good).
Each symbol's champion is a small gradient-boosted model (one artifact registered for every
symbol). For each live candle: the real seconds from its close (the stand-in's clock) to its prediction's publication on
`predictions`; every expected prediction is counted (`missing`). The floor, measured in the same
run: the same model's batch inference of N windows in one call, which is the least a burst costs.
Writes `bench/results/burst.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from bench.__main__ import machine
from bench.common import print_rows, write_result
from bench.system_bench import MemoryWatch, champions, fresh, wait_for
from shared.config import Settings
from shared.messaging import topics
from testkit.kafka import read_topic
from testkit.services import ServiceProcess, with_free_ports
from testkit.soak import read_clock

MINUTE = 60_000


def small_gbm(model_dir: Path) -> Path:
    """A gradient-boosted model on generated 1m candles (seconds to train, light to load 400 times)."""
    from dataclasses import replace

    from shared.model.artifacts import save_model
    from shared.model.synthetic import synthetic_candles
    from shared.model.training import TrainConfig, train

    frame = synthetic_candles(3000, seed=5, interval_ms=MINUTE, phi=0.05)
    result = train("gbm", frame, replace(TrainConfig(window=12, epochs=1, seed=1), interval_ms=MINUTE))
    return save_model(result, model_dir, "C0001USDT", "1m")


def batch_floor(path: Path, symbols: int) -> dict[str, float]:
    """The same model's one-call inference of `symbols` windows: the least a burst costs."""
    from shared.model.artifacts import load_model
    from shared.model.synthetic import synthetic_candles

    model = load_model(path)
    frame = synthetic_candles(symbols + int(model.history_needed) + 1, seed=9, interval_ms=MINUTE)
    ends = np.arange(int(model.history_needed) - 1, int(model.history_needed) - 1 + symbols)
    model.predict_many(frame, ends)  # warm
    times = []
    for _ in range(20):
        started = time.perf_counter()
        model.predict_many(frame, ends)
        times.append(time.perf_counter() - started)
    return {"batch_ms": round(1000 * float(np.median(times)), 2), "windows": symbols}


async def burst(base: Settings, model: Path, logs: Path, count: int, bursts: int, speed: float) -> dict[str, Any]:
    symbols = [f"C{i:04d}USDT" for i in range(1, count + 1)]
    async with fresh(base, kafka_partitions=6) as settings:
        config = with_free_ports(settings)
        port = config.sim_port
        config = config.model_copy(update={
            "symbols": symbols, "interval": "1m", "intervals": ["1m"], "history_candles": {"1m": 90},
            "binance_rest_url": f"http://127.0.0.1:{port}", "binance_ws_url": f"ws://127.0.0.1:{port}",
        })
        await champions(config, model, symbols, "1m")
        sim = ServiceProcess("sim", config, logs, args=[
            "--generate-days", "1", "--start", "+0.07d", "--interval", "1m", "--speed", str(speed), "--burst",
            "--symbols", str(count), "--port", str(port)])
        ingestor = ServiceProcess("ingestor", config, logs)
        predictor = ServiceProcess("predictor", config, logs)
        processes = [sim, ingestor, predictor]
        try:
            with MemoryWatch(processes) as memory:
                await sim.started()
                ingestor.start()
                predictor.start()

                async def caught_up() -> bool:
                    now = (await read_clock(port)).sim_now()
                    conn = await asyncpg.connect(config.database)
                    try:
                        rows = await conn.fetch("SELECT max(base_time) AS last FROM futures GROUP BY symbol")
                    finally:
                        await conn.close()
                    return len(rows) == count and min(r["last"] for r in rows) >= now - 2 * MINUTE

                warmup_s = await wait_for(caught_up, "every symbol predicted", 900, processes)
                clock = await read_clock(port)
                live_sim = clock.sim_now()
                await asyncio.sleep(bursts * 60 / speed)
                end_sim = clock.sim_now()
                await asyncio.sleep(5)  # the last burst's predictions
                for process in (ingestor, predictor):
                    await process.terminate()
                await sim.terminate()
        finally:
            for process in processes:
                process.stop()

        first: dict[tuple[str, int], float] = {}
        for record in await read_topic(config, topics.PREDICTIONS, within=120):
            body = json.loads(record.value)
            if body.get("kind", "prediction") == "prediction":
                closed = body["base_time"] + MINUTE
                if live_sim < closed <= end_sim:
                    first.setdefault((body["symbol"], closed), record.timestamp / 1000 - clock.wall_of(closed))
        closes = list(range((live_sim // MINUTE + 1) * MINUTE, end_sim + 1, MINUTE))
        expected = {(s, t) for s in symbols for t in closes}
        latencies = sorted(first[k] for k in expected if k in first)
        return {
            "symbols": count, "interval": "1m", "speed": speed, "bursts": len(closes),
            "predictions": len(latencies), "missing": len(expected - set(first)),
            "p50_close_to_prediction_s": round(latencies[len(latencies) // 2], 3) if latencies else None,
            "p99_close_to_prediction_s": round(latencies[int(0.99 * (len(latencies) - 1))], 3) if latencies else None,
            "max_close_to_prediction_s": round(latencies[-1], 3) if latencies else None,
            "warmup_s": round(warmup_s, 1), "peak_rss_mib": memory.mib(),
        }


async def run(count: int, bursts: int, speed: float) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    model = await asyncio.to_thread(small_gbm, scratch / "models")
    floor = await asyncio.to_thread(batch_floor, model, count)
    figures = await burst(Settings(), model, scratch / "logs", count, bursts, speed)
    p99 = figures["p99_close_to_prediction_s"]
    figures["floor_batch_inference_ms"] = floor["batch_ms"]
    figures["ratio_p99_to_floor"] = round(1000 * p99 / floor["batch_ms"], 1) if p99 and floor["batch_ms"] else None
    return {"machine": machine(), **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=400)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--speed", type=float, default=10.0, help="the stand-in's clock (10: a burst every 6 s)")
    args = parser.parse_args()
    result = asyncio.run(run(args.symbols, args.bursts, args.speed))
    write_result("burst", result)
    print(f"\nburst benchmark: {args.symbols} symbols' 1m candles closing at once, one predictor "
          f"({result['machine']})")
    print_rows([(k, json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in result.items() if k != "machine"])


if __name__ == "__main__":
    main()
