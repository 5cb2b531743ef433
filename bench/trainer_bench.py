"""Trainer benchmark: the daily training of N streams with the fastest kind on one trainer, beside
its floor.

    .venv/bin/python -m bench.trainer_bench                          # 6 streams of 1m, 90 days each
    .venv/bin/python -m bench.trainer_bench --streams 8 --days 30 --kind gbm

Each stream's history (generated 1m candles; 90 days, 129,600 candles, is the trainer's default
training history for 1m) is stored in a database of the benchmark's own. The service's runner
(`services.trainer.runner.Trainer`, with its worker process) then trains every stream as a daily
tick asks for it: load the candles, fit the kind, judge it beside the baselines on the same unseen
rows, promote it, train the OHLC variant, rebuild the series. The first run alone (it starts the
worker process: once per trainer), then the others requested at the same instant through the
service's scheduler, `trainer_runs_at_once` at a time: their wall time per stream, times 399, plus
the first, is the figure beside the issue's 30 minutes for 400 streams. Floor, in the same run:
`train()` alone (features, fit, evaluation) on one stream's candles in this process. Writes
`bench/results/trainer.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.__main__ import machine
from bench.common import print_rows, write_result
from shared.config import Settings
from shared.market.binance_csv import COLUMNS
from shared.market.streams import Stream
from shared.messaging.runtime import make_broker
from shared.model.synthetic import synthetic_candles
from shared.storage import create_pool
from testkit.infra import drop_database, isolated_settings
from testkit.kafka import delete_topics

MINUTE = 60_000
TARGET_STREAMS, TARGET_MINUTES = 400, 30


async def store(settings: Settings, symbols: list[str], candles: int) -> None:
    conn = await asyncpg.connect(settings.database)
    try:
        for i, symbol in enumerate(symbols):
            frame = synthetic_candles(candles, seed=i, interval_ms=MINUTE, phi=0.05)
            records = [(symbol, "1m", *(int(r[c]) if c in ("open_time", "close_time", "trades") else float(r[c])
                                         for c in COLUMNS)) for r in frame.to_dict("records")]
            await conn.copy_records_to_table("candles", records=records, columns=["symbol", "interval", *COLUMNS])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def run(streams: int, days: float, kind: str) -> dict[str, Any]:
    from services.trainer.runner import Trainer
    from services.trainer.scheduler import TrainingScheduler
    from services.trainer.worker import make_executor, shutdown_executor
    from shared.model.training import train
    from shared.storage.candle_store import load_candles

    symbols = [f"T{i:03d}USDT" for i in range(streams)]
    candles = int(days * 1440)
    settings = await isolated_settings(Settings(), model_dir=Path(tempfile.mkdtemp(prefix="bench-trainer-")),
                                       symbols=symbols, interval="1m", intervals=["1m"], model_kinds=[kind],
                                       train_days=days)
    executor = make_executor()
    pool = await create_pool(settings.database)
    broker = make_broker(settings, "bench")
    try:
        await store(settings, symbols, candles)
        await broker.start()
        trainer = Trainer(settings, pool, broker, executor)
        started = time.perf_counter()  # the first run starts the worker process (imports): once per trainer
        statuses = [await trainer.run(Stream(symbols[0], "1m"), ["daily tick (benchmark)"])]
        first = time.perf_counter() - started
        # The rest as a daily tick asks for them: every stream at the same instant, through the
        # service's scheduler (which runs `trainer_runs_at_once` of them at a time).
        done: dict[str, str] = {}

        async def one(stream: Stream, reasons: list[str], requested_ms: int) -> None:
            done[stream.symbol] = await trainer.run(stream, reasons, requested_ms)

        scheduler = TrainingScheduler(one)
        started = time.perf_counter()
        for symbol in symbols[1:]:
            scheduler.request(Stream(symbol, "1m"), "daily tick (benchmark)")
        await scheduler.idle()
        rest = time.perf_counter() - started
        statuses += [done[symbol] for symbol in symbols[1:]]
        frame = await load_candles(pool, symbols[0], "1m")
        await asyncio.to_thread(train, kind, frame, trainer._config("1m"))  # warm, as the worker is
        started = time.perf_counter()
        await asyncio.to_thread(train, kind, frame, trainer._config("1m"))
        floor = time.perf_counter() - started
        await trainer.locks.close()
    finally:
        await broker.stop()
        await pool.close()
        shutdown_executor(executor)
        await drop_database(settings.database)
        await delete_topics(settings)
    per_stream = rest / (streams - 1)
    return {
        "machine": machine(), "kind": kind, "streams": streams, "candles_per_stream": candles,
        "runs_at_once": settings.trainer_runs_at_once, "statuses": statuses,
        "first_run_s": round(first, 1), "seconds_per_stream": round(per_stream, 2),
        "floor_train_alone_s": round(floor, 2), "ratio_to_floor": round(per_stream / floor, 2),
        f"minutes_for_{TARGET_STREAMS}_streams": round((first + (TARGET_STREAMS - 1) * per_stream) / 60, 1),
        "target_minutes": TARGET_MINUTES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=6)
    parser.add_argument("--days", type=float, default=90.0, help="history per stream (the 1m default: 90)")
    parser.add_argument("--kind", default="linear", help="the model kind (linear: the fastest)")
    args = parser.parse_args()
    result = asyncio.run(run(args.streams, args.days, args.kind))
    write_result("trainer", result)
    print(f"\ntrainer benchmark: daily training of {args.streams} streams of 1m on one trainer ({result['machine']})")
    print_rows([(k, str(v)) for k, v in result.items() if k != "machine"])


if __name__ == "__main__":
    main()
