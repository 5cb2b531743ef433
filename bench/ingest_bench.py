"""Ingest benchmark: archive import throughput through Kafka into Postgres, and live ingest lag.

    .venv/bin/python -m bench.ingest_bench                     # ../shared/data when present, else generated
    .venv/bin/python -m bench.ingest_bench --data DIR --live-seconds 60

1. Import: one year of 5m candles (105k) from monthly archive files, published to `candles`
   (`candlecast import`'s code) and stored by the recorder (the ingestor's code), timed until
   the last row is in Postgres: first one after the other in this process (each step's own rate,
   the recorder on a backlog as after an import), then as deployed, `candlecast import` as a
   process of its own while the recorder runs.
2. Live: the stand-in at 600x (a candle every 0.5 s), the ingestor in-process; for each live
   candle, the real seconds from the moment it closed on the stand-in's clock to its Kafka
   publish (the record's timestamp) and to its Postgres commit (`recorded_at`).

Runs on the local Kafka and Postgres, in its own database and topics (removed afterwards).
Prints a table and writes `bench/results/ingest.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import DEFAULT_DATA, percentiles, print_rows, write_result
from services.ingestor.binance import Backoff
from services.ingestor.importer import load_file, publish_candles
from services.ingestor.main import serve
from services.ingestor.options import IngestOptions
from services.ingestor.recorder import add_recorder
from services.sim import BinanceSim, Market
from services.sim.archive import write_monthly_archives
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.runtime import make_broker, make_producer
from shared.storage import create_pool
from testkit.infra import drop_database, isolated_settings
from testkit.kafka import delete_topics, read_topic
from testkit.services import ServiceProcess


async def _drop(settings: Settings) -> None:
    await delete_topics(settings)
    await drop_database(settings.database)


async def _wait_rows(pool: asyncpg.Pool, n: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while (count := await pool.fetchval("SELECT count(*) FROM candles")) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {count} of {n} rows after {limit:.0f}s")
        await asyncio.sleep(0.05)


async def bench_import(base: Settings, files: list[Path]) -> dict[str, Any]:
    settings = await isolated_settings(base)
    try:
        started = time.perf_counter()
        candles = [c for path in files for c in load_file(path)]
        read_s = time.perf_counter() - started
        pool = await create_pool(settings.database)
        recorder = make_broker(settings, "bench-recorder")
        add_recorder(recorder, settings, pool)
        producer = make_producer(settings, "bench-import")
        await producer.start()
        try:
            t0 = time.perf_counter()
            await publish_candles(producer, settings, candles)
            publish_s = time.perf_counter() - t0
            await recorder.start()  # the recorder starts on a full topic: a backlog, as after an import
            await _wait_rows(pool, len(candles), 600)
            total_s = time.perf_counter() - t0
        finally:
            await producer.stop()
            await recorder.stop()
            await pool.close()
        return {
            "files": len(files),
            "candles": len(candles),
            "read_validate_s": round(read_s, 2),
            "publish_s": round(publish_s, 2),
            "publish_candles_per_s": round(len(candles) / publish_s),
            "record_backlog_s": round(total_s - publish_s, 2),
            "record_backlog_candles_per_s": round(len(candles) / (total_s - publish_s)),
            "publish_and_record_s": round(total_s, 2),
            "end_to_end_candles_per_s": round(len(candles) / total_s),
            **await bench_import_beside_recorder(base, files, len(candles)),
        }
    finally:
        await _drop(settings)


async def bench_import_beside_recorder(base: Settings, files: list[Path], count: int) -> dict[str, Any]:
    """As deployed: the recorder runs (here, in this process) while `candlecast import` runs as a
    process of its own; from the command's start (reading the files included) to the last row."""
    settings = await isolated_settings(base)
    pool = await create_pool(settings.database)
    recorder = make_broker(settings, "bench-recorder")
    add_recorder(recorder, settings, pool)
    importer = ServiceProcess("import", settings, Path(tempfile.mkdtemp(prefix="bench-import-")),
                              args=[str(p) for p in files])
    try:
        await recorder.start()
        started = time.perf_counter()
        importer.start()
        await _wait_rows(pool, count, 600)
        total_s = time.perf_counter() - started
        await asyncio.to_thread(importer.proc.wait)  # type: ignore[union-attr]
        if importer.returncode != 0:
            raise RuntimeError(f"import failed\n{importer.tail()}")
    finally:
        importer.stop()
        await recorder.stop()
        await pool.close()
        await _drop(settings)
    return {"import_process_beside_recorder_s": round(total_s, 2),
            "import_process_beside_recorder_candles_per_s": round(count / total_s)}


async def bench_live(base: Settings, market: Market, seconds: float, speed: float) -> dict[str, Any]:
    settings = await isolated_settings(base)
    try:
        symbol = market.symbols[0]
        async with BinanceSim(market, speed=speed) as sim:
            s = settings.model_copy(update={
                "binance_rest_url": sim.rest_url, "binance_ws_url": sim.ws_url, "symbols": [symbol],
                "backfill_days": 1, "interval": market.interval, "intervals": [market.interval],
            })
            stop = asyncio.Event()
            task = asyncio.create_task(serve(s, stop, options=IngestOptions(backoff=Backoff(0.1, 1.0))))
            pool = await create_pool(s.database)
            try:
                await _wait_rows(pool, 288, 120)  # the backfill is done: from here on, candles are live
                live_from = sim.clock.now_ms()
                await asyncio.sleep(seconds)
                stop.set()
                await task
                close_wall = {}
                for record in await read_topic(s, topics.CANDLES):
                    body = json.loads(record.value)
                    if body["close_time"] + 1 > live_from:
                        close_wall[body["open_time"]] = (sim.clock.wall_time_of(body["close_time"] + 1),
                                                         record.timestamp / 1000)
                rows = await pool.fetch(
                    "SELECT open_time, extract(epoch FROM recorded_at)::float8 AS at FROM candles "
                    "WHERE open_time = ANY($1)",
                    list(close_wall),
                )
            finally:
                stop.set()
                await pool.close()
        publish_lag = [(published - closed) * 1000 for closed, published in close_wall.values()]
        record_lag = [(r["at"] - close_wall[r["open_time"]][0]) * 1000 for r in rows]
        return {
            "speed": speed,
            "live_candles": len(publish_lag),
            "publish_lag_ms": percentiles(publish_lag, [0.99]),
            "record_lag_ms": percentiles(record_lag, [0.99]),
        }
    finally:
        await _drop(settings)


def _archives(data: Path | None, scratch: Path) -> tuple[list[Path], str]:
    if data is not None and any(data.glob("*.csv")):
        files = sorted(p for p in data.glob("*.csv"))
        return files, f"{len(files)} archive files in {data}"
    market = Market.generated(["BTCUSDT"], "5m", days=366, seed=1)
    return write_monthly_archives(market, scratch), "generated year (no archive folder found)"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings()
    scratch = Path("/tmp") / f"ingest-bench-{uuid.uuid4().hex[:6]}"
    files, source = _archives(args.data, scratch)
    result: dict[str, Any] = {"source": source}
    result["import"] = await bench_import(base, files)
    market = Market.from_files(files)
    result["live"] = await bench_live(base, market, args.live_seconds, args.speed)
    return result


def print_table(result: dict[str, Any]) -> None:
    imp, live = result["import"], result["live"]
    rows = [
        ("source", result["source"]),
        ("import: candles", f"{imp['candles']:,} from {imp['files']} files"),
        ("import: read + validate", f"{imp['read_validate_s']} s"),
        ("import: publish to Kafka", f"{imp['publish_s']} s  ({imp['publish_candles_per_s']:,} candles/s)"),
        ("import: then the recorder on that backlog", f"{imp['record_backlog_s']} s  "
                                                       f"({imp['record_backlog_candles_per_s']:,} candles/s)"),
        ("import: publish, then recorded in Postgres", f"{imp['publish_and_record_s']} s  "
                                                        f"({imp['end_to_end_candles_per_s']:,} candles/s)"),
        ("import: `candlecast import` process beside the recorder",
         f"{imp['import_process_beside_recorder_s']} s  "
         f"({imp['import_process_beside_recorder_candles_per_s']:,} candles/s, files read included)"),
        (f"live at {live['speed']:g}x: candles measured", str(live["live_candles"])),
        ("live: close -> Kafka publish (p50/p99/max)", "{p50} / {p99} / {max} ms".format(**live["publish_lag_ms"])),
        ("live: close -> Postgres commit (p50/p99/max)", "{p50} / {p99} / {max} ms".format(**live["record_lag_ms"])),
    ]
    print_rows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--speed", type=float, default=600.0)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print_table(result)
    write_result("ingest", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
