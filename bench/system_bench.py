"""System benchmark: many symbols live, and a year replayed, through the services as real processes.

    .venv/bin/python -m bench.system_bench                      # both parts (about 10 minutes)
    .venv/bin/python -m bench.system_bench --only many --symbols 20 --live-seconds 30

1. Many symbols: the stand-in (`candlecast sim`) serves 50 generated symbols at 1m and 600x, i.e.
   500 closed candles a second. One ingestor and two predictors in one consumer group (the
   `candles` topic has 6 partitions) after a one-day backfill; then, for each live candle, the
   real seconds from its close on the stand-in's clock to its publication on `candles` and to
   its prediction's publication on `predictions`. Also: how the group shared the partitions,
   and whether any candle was predicted twice.
2. Replay: a generated year of 1m candles of one symbol (525,600) as monthly archives, through
   `candlecast import` -> `candles` -> recorder -> Postgres, predictor -> `futures`, with the
   trainer (a tiny training config: the replay ticks 365 days) and the gateway running. End to
   end candles/s (import start to the last prediction stored), and each process's peak memory.

The services run as `python -m shared.cli <service>` on the local Kafka and Postgres, in a
database and topics of their own (removed afterwards); a tiny model (trained here, in seconds) is
every symbol's champion. Prints a table and writes `bench/results/system.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.__main__ import machine
from bench.common import RESULTS_DIR, percentiles, print_rows, write_result
from services.sim import Market
from services.sim.archive import write_monthly_archives
from shared.config import Settings
from shared.messaging import topics
from testkit.infra import drop_database, isolated_settings
from testkit.kafka import delete_topics, read_topic
from testkit.metrics import metric
from testkit.models import make_champion, train_tiny
from testkit.ports import free_port
from testkit.services import ServiceProcess, with_free_ports

MINUTE = 60_000
DAY_MS = 86_400_000
#: The tiny model's history: its first prediction follows this many candles.
HISTORY = 60


def _summary(values_ms: list[float]) -> dict[str, float]:
    return {"n": len(values_ms), **(percentiles(values_ms, [0.99]) if values_ms else {})}


class MemoryWatch:
    """Peak resident memory of each process (with its children), sampled twice a second."""

    def __init__(self, processes: Iterable[ServiceProcess]) -> None:
        self.processes = list(processes)
        self.peak: dict[str, int] = defaultdict(int)
        self._task: asyncio.Task[None] | None = None

    def add(self, process: ServiceProcess) -> None:
        self.processes.append(process)

    async def _run(self) -> None:
        while True:
            for process in self.processes:
                self.peak[process.name] = max(self.peak[process.name], process.rss_bytes())
            await asyncio.sleep(0.5)

    def __enter__(self) -> MemoryWatch:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def mib(self) -> dict[str, float]:
        return {name: round(peak / 2**20, 1) for name, peak in sorted(self.peak.items())}


@contextlib.asynccontextmanager
async def fresh(base: Settings, **changes: Any) -> AsyncIterator[Settings]:
    settings = await isolated_settings(base, **changes)
    try:
        yield settings
    finally:
        await delete_topics(settings)
        await drop_database(settings.database)


async def wait_for(check: Any, what: str, within: float, processes: Iterable[ServiceProcess] = ()) -> float:
    started = time.monotonic()
    while not await check():
        for process in processes:
            process.check_alive()
        if time.monotonic() - started > within:
            raise TimeoutError(f"{what}: not within {within:.0f}s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def champions(settings: Settings, model: Path, symbols: list[str], interval: str) -> None:
    conn = await asyncpg.connect(settings.database)
    try:
        for symbol in symbols:
            await make_champion(conn, model, symbol, interval)
    finally:
        await conn.close()


# -- 1. many symbols, live ----------------------------------------------------------------------------


async def sim_clock(port: int) -> tuple[float, int, float]:
    """(wall time, the stand-in's now, speed) at one moment, to turn its times into wall times."""
    async with httpx.AsyncClient(timeout=10) as http:
        before = time.time()
        body = (await http.get(f"http://127.0.0.1:{port}/_sim/clock")).json()
        after = time.time()
    return (before + after) / 2, int(body["now"]), float(body["speed"])


async def served(predictor: ServiceProcess, symbols: list[str]) -> dict[str, float]:
    """Predictions made so far by one instance, by symbol."""
    return {s: await metric(predictor.port or 0, "candlecast_predictions_total", symbol=s) for s in symbols}


async def many_symbols(base: Settings, model: Path, logs: Path, count: int, live_seconds: float) -> dict[str, Any]:
    symbols = [f"SYN{i:02d}USDT" for i in range(count)]
    async with fresh(base, kafka_partitions=6) as settings:
        config = with_free_ports(settings)
        sim_port = config.sim_port
        config = config.model_copy(update={
            "symbols": symbols, "interval": "1m", "intervals": ["1m"], "backfill_days": 1,
            "binance_rest_url": f"http://127.0.0.1:{sim_port}", "binance_ws_url": f"ws://127.0.0.1:{sim_port}",
        })
        await champions(config, model, symbols, "1m")
        # Three days left after the backfill's one: 7 minutes of live data at 600x.
        sim = ServiceProcess("sim", config, logs, args=["--generate-days", "5", "--start", "+2d", "--interval", "1m",
                                                          "--speed", "600", "--symbols", ",".join(symbols),
                                                          "--port", str(sim_port)])
        ingestor = ServiceProcess("ingestor", config, logs)
        predictors = [ServiceProcess("predictor", with_free_ports(config), logs, name=f"predictor-{i}")
                      for i in (1, 2)]
        processes = [sim, ingestor, *predictors]
        try:
            with MemoryWatch(processes) as memory:
                await sim.started()
                for process in (ingestor, *predictors):
                    process.start()

                async def caught_up() -> bool:
                    """Every symbol's newest prediction follows a candle that closed at most 5 s ago (real time)."""
                    _, now, speed = await sim_clock(sim_port)
                    conn = await asyncpg.connect(config.database)
                    try:
                        rows = await conn.fetch("SELECT max(base_time) AS last FROM futures GROUP BY symbol")
                    finally:
                        await conn.close()
                    return len(rows) == count and min(r["last"] for r in rows) >= now - MINUTE - 5_000 * speed

                started = time.monotonic()
                backfill_s = await wait_for(caught_up, "the backfill predicted", 600, processes)
                before = {p.name: await served(p, symbols) for p in predictors}
                live_wall, live_sim, speed = await sim_clock(sim_port)
                await asyncio.sleep(live_seconds)
                # The window ends here, before the stop: a predictor that stops hands its partitions
                # to the other (a rebalance of seconds), which is the stop's latency, not live's.
                _, end_sim, _ = await sim_clock(sim_port)
                await asyncio.sleep(2)  # what closed just before the end is predicted
                after = {p.name: await served(p, symbols) for p in predictors}
                for process in (ingestor, *predictors):
                    await process.terminate()
                await sim.terminate()
            total_s = time.monotonic() - started
        finally:
            for process in processes:
                process.stop()

        def wall(sim_ms: int) -> float:
            return live_wall + (sim_ms - live_sim) / speed / 1000

        ingest_ms, predict_ms = [], []
        for record in await read_topic(config, topics.CANDLES, within=120):
            body = json.loads(record.value)
            closed = body["close_time"] + 1
            if live_sim < closed <= end_sim:
                ingest_ms.append(record.timestamp - wall(closed) * 1000)
        published: dict[tuple[str, int], set[str]] = defaultdict(set)
        copies: Counter[tuple[str, int]] = Counter()
        for record in await read_topic(config, topics.PREDICTIONS, within=120):
            body = json.loads(record.value)
            if "target_time" not in body:
                continue  # a RealClose
            key = (body["symbol"], body["target_time"])
            copies[key] += 1
            published[key].add(json.dumps({k: body[k] for k in ("open", "high", "low", "close", "p_up")}))
            closed = body["base_time"] + MINUTE
            if live_sim < closed <= end_sim and copies[key] == 1:
                predict_ms.append(record.timestamp - wall(closed) * 1000)
        twice = [key for key, n in copies.items() if n > 1]
        conn = await asyncpg.connect(config.database)
        try:
            futures = await conn.fetchval("SELECT count(*) FROM futures")
            candles = await conn.fetchval("SELECT count(*) FROM candles")
        finally:
            await conn.close()
        return {
            "symbols": count,
            "interval": "1m",
            "speed": speed,
            "candles_per_s_offered": round(count * speed / 60, 1),
            "partitions": 6,
            "predictor_instances": len(predictors),
            "backfill_candles": count * 1440,
            "backfill_predicted_s": round(backfill_s, 1),
            "live_seconds": live_seconds,
            "candles_stored": candles,
            "futures_rows": futures,
            "live_predictions_per_instance": {
                name: int(sum(after[name].values()) - sum(before[name].values())) for name in after
            },
            "live_symbols_per_instance": {
                name: sum(1 for s in symbols if after[name][s] > before[name][s]) for name in after
            },
            # At-least-once: a batch a rebalance takes from one instance before its commit is
            # handled again by the other, which finds the stored rows and re-publishes them.
            "published_twice": len(twice),
            "published_twice_live": sum(1 for _, t in twice if live_sim < t - MINUTE <= end_sim),
            "published_twice_with_different_values": sum(1 for key in twice if len(published[key]) > 1),
            "live_close_to_candles_ms": _summary(ingest_ms),
            "live_close_to_prediction_ms": _summary(predict_ms),
            "peak_rss_mib": memory.mib(),
            "total_s": round(total_s, 1),
        }


# -- 2. a year replayed --------------------------------------------------------------------------------


async def replay_year(base: Settings, model: Path, logs: Path, scratch: Path, days: int) -> dict[str, Any]:
    symbol = "BTCUSDT"
    market = Market.generated([symbol], "1m", days=days, seed=11)
    files = write_monthly_archives(market, scratch / "archives")
    total = len(market.series[symbol])
    async with fresh(base) as settings:
        config = with_free_ports(settings.model_copy(update={
            "symbols": [symbol], "interval": "1m", "intervals": ["1m"],
            # A replay needs no exchange: the ingestor's Binance side waits on a closed port (retrying
            # politely), and the ingestor works as the recorder.
            "binance_rest_url": f"http://127.0.0.1:{free_port()}", "binance_ws_url": f"ws://127.0.0.1:{free_port()}",
            "train_config": {"window": 12, "units": 8, "epochs": 2, "patience": 1, "batch_size": 256},
            "train_days": 30,
        }))
        await champions(config, model, [symbol], "1m")
        services = [ServiceProcess(name, config, logs) for name in ("ingestor", "predictor", "trainer", "gateway")]
        importer = ServiceProcess("import", config, logs, args=[str(p) for p in files])
        conn = await asyncpg.connect(config.database)
        try:
            with MemoryWatch(services) as memory:
                for process in services:
                    await process.started()
                memory.add(importer)
                started = time.monotonic()
                importer.start()
                await asyncio.to_thread(importer.proc.wait)  # type: ignore[union-attr]
                published_s = time.monotonic() - started
                if importer.returncode != 0:
                    raise RuntimeError(f"import failed\n{importer.tail()}")

                async def recorded() -> bool:
                    return bool(await conn.fetchval("SELECT count(*) FROM candles") >= total)

                async def predicted() -> bool:
                    return bool(await conn.fetchval("SELECT count(*) FROM futures") >= total - HISTORY + 1)

                recorded_s = published_s + await wait_for(recorded, "every candle recorded", 1800, services)
                predicted_s = published_s + await wait_for(predicted, "every candle predicted", 1800, services)
                runs = await conn.fetch(
                    "SELECT job_name, status, count(*) AS n FROM job_logs GROUP BY 1, 2 ORDER BY 1, 2"
                )
                for process in services:
                    await process.terminate()
        finally:
            await conn.close()
            for process in (*services, importer):
                process.stop()
        return {
            "candles": total,
            "days": days,
            "import_publish_s": round(published_s, 1),
            "import_candles_per_s": round(total / published_s),
            "recorded_s": round(recorded_s, 1),
            "recorded_candles_per_s": round(total / recorded_s),
            "predicted_s": round(predicted_s, 1),
            "end_to_end_candles_per_s": round(total / predicted_s),
            "trainer_jobs": {f"{r['job_name']} {r['status']}": r["n"] for r in runs},
            "peak_rss_mib": memory.mib(),
        }


# -- the table -----------------------------------------------------------------------------------------


def _latency(summary: dict[str, float]) -> str:
    if not summary.get("n"):
        return "none measured"
    return "{p50} / {p99} / {max} ms  (n={n})".format(**summary)


def print_table(result: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = [("machine", result["machine"])]
    many = result.get("many_symbols")
    if many:
        tag = f"{many['symbols']} symbols at {many['interval']}, {many['speed']:g}x"
        rows += [
            (tag, f"{many['candles_per_s_offered']:,} candles/s offered, {many['partitions']} partitions, "
                  f"{many['predictor_instances']} predictors in one group"),
            ("  backfill predicted", f"{many['backfill_candles']:,} candles in {many['backfill_predicted_s']} s"),
            ("  live close -> candles topic (p50/p99/max)", _latency(many["live_close_to_candles_ms"])),
            ("  live close -> prediction published (p50/p99/max)", _latency(many["live_close_to_prediction_ms"])),
            ("  live predictions per instance",
             ", ".join(f"{k} {v:,}" for k, v in many["live_predictions_per_instance"].items())),
            ("  live symbols per instance",
             ", ".join(f"{k} {v}" for k, v in many["live_symbols_per_instance"].items())),
            ("  predictions published twice (live; with other values)",
             f"{many['published_twice']} ({many['published_twice_live']}; "
             f"{many['published_twice_with_different_values']})"),
            ("  peak RSS (MiB)", ", ".join(f"{k} {v:,.0f}" for k, v in many["peak_rss_mib"].items())),
        ]
    replay = result.get("replay")
    if replay:
        rows += [
            (f"replay: {replay['candles']:,} 1m candles ({replay['days']} days)",
             f"import -> Kafka {replay['import_publish_s']} s ({replay['import_candles_per_s']:,}/s)"),
            ("  recorded in Postgres", f"{replay['recorded_s']} s ({replay['recorded_candles_per_s']:,} candles/s)"),
            ("  predicted (end to end)",
             f"{replay['predicted_s']} s ({replay['end_to_end_candles_per_s']:,} candles/s)"),
            ("  trainer jobs meanwhile", ", ".join(f"{k} {v}" for k, v in replay["trainer_jobs"].items()) or "none"),
            ("  peak RSS (MiB)", ", ".join(f"{k} {v:,.0f}" for k, v in replay["peak_rss_mib"].items())),
        ]
    print()
    print_rows(rows)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings()
    scratch = Path(tempfile.mkdtemp(prefix="system-bench-"))
    logs = scratch / "logs"
    result: dict[str, Any] = {"machine": machine()}
    try:
        model = await asyncio.to_thread(train_tiny, scratch / "models", "BTCUSDT", "1m")
        if args.only in (None, "many"):
            result["many_symbols"] = await many_symbols(base, model, logs, args.symbols, args.live_seconds)
        if args.only in (None, "replay"):
            result["replay"] = await replay_year(base, model, logs, scratch, args.replay_days)
    except BaseException:
        print(f"logs kept in {logs}")
        raise
    if args.keep:
        print(f"logs kept in {logs}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["many", "replay"], help="run one part only")
    parser.add_argument("--symbols", type=int, default=50, help="symbols served live (default 50)")
    parser.add_argument("--live-seconds", type=float, default=60.0, help="length of the live measurement")
    parser.add_argument("--replay-days", type=int, default=365, help="days of 1m candles replayed")
    parser.add_argument("--keep", action="store_true", help="keep the services' logs")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    saved = RESULTS_DIR / "system.json"
    previous = json.loads(saved.read_text()) if saved.exists() and args.only else {}  # keep the other part
    print_table(result)
    write_result("system", {**previous, **result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
