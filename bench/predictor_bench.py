"""Predictor benchmark: live candle-to-prediction latency, and replay throughput.

    .venv/bin/python -m bench.predictor_bench                    # ../shared/data when present, else generated
    .venv/bin/python -m bench.predictor_bench --live-seconds 120 --batch 1000
    .venv/bin/python -m bench.predictor_bench --kind linear      # the champion's kind (default lstm)

The champion has the default architecture (window 60; an LSTM of 32 units and one epoch of
training, its weights do not change its speed; or `--kind`). The predictor runs as its own process (`candlecast
predictor`, as `candlecast up` starts it) on the local Kafka and Postgres, in a database and
topics of its own (removed afterwards).

1. Live: the stand-in at 600x (a 5m candle every 0.5 s) and the ingestor (in this process).
   For each live candle, the real time from its close on the stand-in's clock to the Kafka
   timestamp of its candle record (the ingestor's part) and of its `Prediction` record (the
   whole path); the difference is the predictor's part.
2. Replay: 90 days of candles (25,920) already in `candles`, a predictor starting with a new
   consumer group (a backfill, a replay, a restart after a long stop): candles per second from
   its first committed batch to the last.

Prints a table and writes `bench/results/predictor.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.common import DEFAULT_DATA, percentiles, print_rows, write_result
from services.ingestor.binance import Backoff
from services.ingestor.importer import publish_candles
from services.ingestor.main import serve as ingestor_serve
from services.ingestor.options import IngestOptions
from services.predictor.handlers import group_id
from services.sim import BinanceSim, Market
from services.sim.market import Series
from shared.config import Settings
from shared.market.binance_csv import frame_to_candles, read_archive_csvs
from shared.messaging import topics
from shared.messaging.runtime import make_producer
from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig
from testkit.infra import drop_database, isolated_settings
from testkit.kafka import committed, delete_topics, read_topic
from testkit.models import make_champion
from testkit.ports import free_port
from testkit.services import ServiceProcess
from testkit.waiting import eventually

SYMBOL, INTERVAL, STEP = "BTCUSDT", "5m", 300_000
DAYS_90 = 90 * 288


async def _fresh(base: Settings, model_dir: Path) -> Settings:
    """The benchmark's own database and topics (removed by `_drop`), with a champion of `model_dir`."""
    return await isolated_settings(base, model_dir=model_dir, symbols=[SYMBOL], interval=INTERVAL,
                                   intervals=[INTERVAL])


async def _drop(settings: Settings) -> None:
    await delete_topics(settings)
    await drop_database(settings.database)


async def _make_champion(settings: Settings, model: Path) -> None:
    conn = await asyncpg.connect(settings.database)
    try:
        await make_champion(conn, model, SYMBOL, INTERVAL)
    finally:
        await conn.close()


async def _scrape(port: int) -> dict[str, float]:
    """Mean of the predictor's own histograms (in ms) from its /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    values = {}
    for line in text.splitlines():
        if line.startswith("candlecast_") and ("_sum " in line or "_count " in line):
            name, value = line.split(" ")
            values[name] = float(value)
    result = {}
    for metric in ("candlecast_candle_to_prediction_seconds", "candlecast_inference_seconds"):
        count = values.get(f"{metric}_count", 0.0)
        if count:
            result[f"{metric}_mean_ms"] = round(values[f"{metric}_sum"] / count * 1000, 3)
            result[f"{metric}_count"] = count
    return result


def train_champion(candles: pd.DataFrame, model_dir: Path, epochs: int, kind: str = "lstm") -> tuple[Path, float]:
    from shared.model.artifacts import save_model
    from shared.model.training import train

    started = time.perf_counter()
    result = train(kind, candles, TrainConfig(epochs=epochs))
    return save_model(result, model_dir, SYMBOL, INTERVAL), time.perf_counter() - started


async def bench_live(base: Settings, market: Market, model: Path, seconds: float, speed: float,
                     logs: Path) -> dict[str, Any]:
    settings = await _fresh(base, model.parent)
    try:
        await _make_champion(settings, model)
        async with BinanceSim(market, speed=speed) as sim:
            s = settings.model_copy(update={"binance_rest_url": sim.rest_url, "binance_ws_url": sim.ws_url,
                                            "backfill_days": 1})
            stop = asyncio.Event()
            ingestor = asyncio.create_task(ingestor_serve(s, stop, options=IngestOptions(backoff=Backoff(0.1, 1.0))))
            port = free_port()
            predictor = ServiceProcess("predictor", s.model_copy(update={"predictor_metrics_port": port}), logs,
                                       name="predictor-live")
            predictor.start()
            try:
                await eventually(lambda: _committed(s, 288), "the backfill through the predictor", within=120,
                                 every=0.2)
                live_from = sim.clock.now_ms() + 5 * STEP  # a few candles for everything to settle
                await asyncio.sleep(seconds)
                own = await _scrape(port)
            finally:
                predictor.stop()
                stop.set()
                await ingestor
            closes = {}
            for record in await read_topic(s, topics.CANDLES):
                body = json.loads(record.value)
                if body["close_time"] + 1 > live_from:
                    closed = sim.clock.wall_time_of(body["close_time"] + 1)
                    closes[body["open_time"]] = (closed, record.timestamp / 1000)
            total, ingest, predict = [], [], []
            for record in await read_topic(s, topics.PREDICTIONS):
                body = json.loads(record.value)
                if "target_time" in body and body["base_time"] in closes:
                    closed, recorded = closes[body["base_time"]]
                    total.append((record.timestamp / 1000 - closed) * 1000)
                    ingest.append((recorded - closed) * 1000)
                    predict.append((record.timestamp / 1000 - recorded) * 1000)
        return {
            "speed": speed,
            "live_candles": len(total),
            "close_to_prediction_ms": percentiles(total, [0.9, 0.99]),
            "close_to_candle_record_ms": percentiles(ingest, [0.9, 0.99]),
            "candle_record_to_prediction_ms": percentiles(predict, [0.9, 0.99]),
            "predictor_metrics": own,
        }
    finally:
        await _drop(settings)


async def bench_replay(base: Settings, candles: pd.DataFrame, model: Path, batch: int, logs: Path) -> dict[str, Any]:
    settings = await _fresh(base, model.parent)
    try:
        await _make_champion(settings, model)
        events = frame_to_candles(candles, SYMBOL, INTERVAL)
        producer = make_producer(settings, "bench")
        await producer.start()
        try:
            await publish_candles(producer, settings, events)
        finally:
            await producer.stop()
        n = len(events)
        started = time.perf_counter()
        own = settings.model_copy(update={"predictor_batch_size": batch, "predictor_metrics_port": free_port()})
        predictor = ServiceProcess("predictor", own, logs, name="predictor-replay")
        predictor.start()
        try:
            first_at, first_count = None, 0
            while True:
                count = await committed(settings, group_id(settings), topics.CANDLES)
                now = time.perf_counter()
                if count and first_at is None:
                    first_at, first_count = now, count
                if count >= n:
                    break
                if now - started > 900:
                    raise TimeoutError(f"only {count} of {n} candles after 900 s")
                await asyncio.sleep(0.05)
        finally:
            predictor.stop()
        conn = await asyncpg.connect(settings.database)
        try:
            rows = await conn.fetchval("SELECT count(*) FROM futures")
            filled = await conn.fetchval("SELECT count(*) FROM futures WHERE real_close IS NOT NULL")
        finally:
            await conn.close()
        assert first_at is not None
        steady = (n - first_count) / (now - first_at)
        return {
            "candles": n,
            "batch_size": batch,
            "futures_rows": rows,
            "filled_rows": filled,
            "start_to_done_s": round(now - started, 2),
            "first_batch_to_done_s": round(now - first_at, 2),
            "candles_per_s": round(steady),
            "candles_per_s_with_startup": round(n / (now - started)),
        }
    finally:
        await _drop(settings)


def inference_floor(candles: pd.DataFrame, model_path: Path, batch: int) -> dict[str, float]:
    """The same model's batch inference over the same windows, in batches of the same size: what
    the replay cannot beat."""
    from shared.model.artifacts import load_model

    model = load_model(model_path)
    ends = np.arange(model.history_needed - 1, len(candles) - 1)
    model.predict_many(candles, ends[:batch])  # warm
    started = time.perf_counter()
    for i in range(0, len(ends), batch):
        model.predict_many(candles, ends[i:i + batch])
    seconds = time.perf_counter() - started
    return {"windows": float(len(ends)), "seconds": round(seconds, 2), "windows_per_s": round(len(ends) / seconds)}


async def produce_floor(settings: Settings, events: int) -> dict[str, float]:
    """aiokafka alone producing as many events of a Prediction's size (acks=all, idempotent) as the
    replay publishes (a prediction and a real close per candle), sent without waiting, then awaited."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.split(","), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        value = b"x" * 420  # a Prediction event with its intervals is ~420 bytes of JSON
        topic = settings.topic(topics.PREDICTIONS)
        started = time.perf_counter()
        pending = [await producer.send(topic, value, key=SYMBOL.encode()) for _ in range(events)]
        await asyncio.gather(*pending)
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    return {"events": float(events), "seconds": round(seconds, 2), "events_per_s": round(events / seconds)}


async def _committed(settings: Settings, n: int) -> bool:
    return await committed(settings, group_id(settings), topics.CANDLES) >= n


def _load(data: Path | None) -> tuple[pd.DataFrame, str]:
    if data is not None and any(data.glob(f"{SYMBOL}-{INTERVAL}-*.csv")):
        files = sorted(data.glob(f"{SYMBOL}-{INTERVAL}-*.csv"))
        return read_archive_csvs(files), f"{len(files)} archive files in {data}"
    return synthetic_candles(200 * 288, phi=0.1, seed=1), "generated candles (no archive folder found)"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings()
    frame, source = _load(args.data)
    last_90 = frame.iloc[-DAYS_90:].reset_index(drop=True)
    workdir = Path(tempfile.mkdtemp(prefix="predictor-bench-"))
    model, train_s = await asyncio.to_thread(train_champion, last_90, workdir / "models", args.epochs, args.kind)
    result: dict[str, Any] = {"source": source, "model": {"version": model.name, "kind": args.kind, "window": 60,
                                                          "units": 32, "train_s": round(train_s, 1)}}
    result["replay"] = await bench_replay(base, last_90, model, args.batch, workdir)
    floor = await asyncio.to_thread(inference_floor, last_90, model, args.batch)
    scratch = await _fresh(base, workdir)
    try:
        produced = await produce_floor(scratch, 2 * len(last_90))
    finally:
        await _drop(scratch)
    result["replay"]["floor_batch_inference"] = floor
    result["replay"]["floor_aiokafka_produce"] = produced
    result["replay"]["ratio_to_inference_floor"] = round(result["replay"]["candles_per_s"] / floor["windows_per_s"], 3)
    market = Market([Series.from_frame(SYMBOL, INTERVAL, frame)])
    result["live"] = await bench_live(base, market, model, args.live_seconds, args.speed, workdir)
    result["logs"] = str(workdir)
    return result


def print_table(result: dict[str, Any]) -> None:
    live, replay = result["live"], result["replay"]
    own = live["predictor_metrics"]
    fmt = "{p50} / {p90} / {p99} / {max} ms"
    rows = [
        ("source", result["source"]),
        ("model", f"{result['model']['version']} ({result['model']['kind']}, window 60; trained in "
                  f"{result['model']['train_s']} s)"),
        (f"live at {live['speed']:g}x: candles measured", str(live["live_candles"])),
        ("live: close -> Prediction published (p50/p90/p99/max)", fmt.format(**live["close_to_prediction_ms"])),
        ("live:   of which close -> candle record (ingestor)", fmt.format(**live["close_to_candle_record_ms"])),
        ("live:   of which candle record -> Prediction (predictor)",
         fmt.format(**live["candle_record_to_prediction_ms"])),
        ("live: predictor's own inference time (mean)",
         f"{own.get('candlecast_inference_seconds_mean_ms', 'n/a')} ms per candle"),
        ("replay: candles through the predictor", f"{replay['candles']:,} (batches of {replay['batch_size']})"),
        ("replay: futures rows / filled", f"{replay['futures_rows']:,} / {replay['filled_rows']:,}"),
        ("replay: throughput", f"{replay['candles_per_s']:,} candles/s ({replay['first_batch_to_done_s']} s; "
                               f"{replay['candles_per_s_with_startup']:,}/s with the process start-up)"),
        ("replay: floor, batch inference alone", f"{replay['floor_batch_inference']['windows_per_s']:,} windows/s "
                                                 f"(ratio {replay['ratio_to_inference_floor']})"),
        ("replay: floor, aiokafka alone (2 events a candle)",
         f"{replay['floor_aiokafka_produce']['events_per_s']:,} events/s"),
    ]
    print_rows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--speed", type=float, default=600.0)
    parser.add_argument("--batch", type=int, default=1000, help="the predictor's batch size (max records)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--kind", default="lstm", help="the champion's kind (lstm, gbm, linear)")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print_table(result)
    write_result("predictor", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
