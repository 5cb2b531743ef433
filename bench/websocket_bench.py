"""Websocket fan-out benchmark: 1,000 clients on the gateway's `/ws/predictions`, each prediction
published to Kafka timed until every client has it, beside its floor measured in the same run.

    .venv/bin/python -m bench.websocket_bench                   # 1,000 clients, 120 predictions, 4 per second
    .venv/bin/python -m bench.websocket_bench --clients 300 --rate 10

The gateway runs as `candlecast gateway` (one uvicorn process) on its own topics and database.
The floor is the raw libraries doing the same work in a process of their own: an aiokafka
consumer of the same topic handing each record to `websockets.broadcast` for the same clients,
no framework, no validation. The clients run in two processes of their own (`websockets`), on
the same two cores as the gateway, Kafka and the publisher: the figures are what one small box
does end to end. A prediction's latency is the client's clock at receipt minus its
`predicted_at`, set when it is published (same machine, same clock; millisecond resolution).
Prints a table and writes `bench/results/websocket.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentiles, write_result
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Prediction
from testkit.infra import drop_database, isolated_settings
from testkit.kafka import delete_topics
from testkit.ports import free_port
from testkit.services import ServiceProcess

START = 1_727_740_800_000  # 2024-10-01, the predictions' target times count on from here
WARMUP, MEASURED, END = "bench-warmup", "bench-measured", "bench-end"


def prediction(n: int, version: str) -> bytes:
    base = START + n * 60_000
    return Prediction(symbol="BTCUSDT", interval="1m", base_time=base, target_time=base + 60_000, open=60_000.0,
                      high=60_100.0, low=59_900.0, close=60_050.0, amplitude=200.0, p_up=0.55,
                      model_version=version, predicted_at=int(time.time() * 1000)).model_dump_json().encode()


# --- the clients (a process of their own: `python -m bench.websocket_bench --clients-process URL N`)

async def _client(url: str, limit: asyncio.Semaphore, connected: list[int], ready: asyncio.Event, total: int,
                  latencies: list[int], counts: list[int]) -> None:
    import orjson
    import websockets

    async with limit:  # 50 handshakes at a time: a burst of 500 overflows the listen backlog
        ws = await websockets.connect(url, max_queue=None, open_timeout=60, ping_interval=None)
    connected[0] += 1
    if connected[0] == total:
        ready.set()
    received = 0
    try:
        async for raw in ws:
            message = orjson.loads(raw)
            data = message.get("data", message)  # the gateway wraps the event; the floor relays it as is
            if data["model_version"] == END:
                break
            if data["model_version"] == MEASURED:
                latencies.append(int(time.time() * 1000) - data["predicted_at"])
                received += 1
    finally:
        counts.append(received)
        await ws.close()


async def _clients(url: str, n: int) -> None:
    latencies: list[int] = []
    counts: list[int] = []
    connected = [0]
    ready = asyncio.Event()
    limit = asyncio.Semaphore(50)
    runners = asyncio.gather(*(_client(url, limit, connected, ready, n, latencies, counts) for _ in range(n)))
    await ready.wait()
    print("ready", flush=True)
    await runners
    print(json.dumps({"latencies_ms": latencies, "counts": counts}), flush=True)


# --- the floor: aiokafka + websockets.broadcast (`--floor-process BOOTSTRAP TOPIC PORT`)

async def _floor(bootstrap: str, topic: str, port: int) -> None:
    import websockets
    from aiokafka import AIOKafkaConsumer

    clients: set[Any] = set()

    async def handler(ws: Any) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await consumer.start()
    async with websockets.serve(handler, "127.0.0.1", port, max_queue=None, ping_interval=None):
        print("ready", flush=True)
        async for record in consumer:
            websockets.broadcast(clients, record.value.decode())


# --- the run

async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.websocket_bench", *args,
                                                stdout=asyncio.subprocess.PIPE, limit=2**28)


async def _ready(proc: asyncio.subprocess.Process, within: float) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), within)
    assert line.strip() == b"ready", f"the process did not get ready: {line!r}"


async def _measure(url: str, settings: Settings, clients: int, count: int, rate: float) -> dict[str, Any]:
    """`clients` connections over two client processes; `count` predictions at `rate` per second."""
    from aiokafka import AIOKafkaProducer

    halves = [clients // 2, clients - clients // 2]
    procs = [await _spawn("--clients-process", url, str(n)) for n in halves]
    try:
        for proc in procs:
            await _ready(proc, 180)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka, linger_ms=0)
        await producer.start()
        topic = settings.topic(topics.PREDICTIONS)
        try:
            for n in range(int(2 * rate) + 1):  # the consumer's position and the clients' first frames
                await producer.send_and_wait(topic, prediction(n, WARMUP), key=b"BTCUSDT|1m")
                await asyncio.sleep(1 / rate)
            for n in range(count):
                await producer.send_and_wait(topic, prediction(1000 + n, MEASURED), key=b"BTCUSDT|1m")
                await asyncio.sleep(1 / rate)
            await asyncio.sleep(2)
            await producer.send_and_wait(topic, prediction(10_000, END), key=b"BTCUSDT|1m")
        finally:
            await producer.stop()
        latencies: list[int] = []
        counts: list[int] = []
        for proc in procs:
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            found = json.loads(out.decode().strip().splitlines()[-1])
            latencies += found["latencies_ms"]
            counts += found["counts"]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
    return {"clients": len(counts), "predictions": count, "rate_per_s": rate,
            "delivered": len(latencies), "missing": clients * count - len(latencies),
            "clients_with_all": sum(c == count for c in counts),
            **{f"{k}_ms": v for k, v in percentiles(latencies, (0.9, 0.99)).items()}}


async def run(clients: int, count: int, rate: float) -> dict[str, Any]:
    port = free_port()
    settings = await isolated_settings(Settings(), gateway_port=port, ws_max_clients=clients)
    logs = Path(tempfile.mkdtemp(prefix="bench-websocket-"))
    figures: dict[str, Any] = {}
    try:
        gateway = ServiceProcess("gateway", settings, logs)
        try:
            await gateway.started(within=60)
            figures["gateway"] = await _measure(f"ws://127.0.0.1:{port}/ws/predictions", settings, clients,
                                                count, rate)
        finally:
            gateway.stop()
        floor_port = free_port()
        floor = await _spawn("--floor-process", settings.kafka, settings.topic(topics.PREDICTIONS), str(floor_port))
        try:
            await _ready(floor, 60)
            figures["floor_aiokafka_websockets"] = await _measure(f"ws://127.0.0.1:{floor_port}", settings,
                                                                  clients, count, rate)
        finally:
            floor.kill()
            await floor.wait()
    finally:
        await drop_database(settings.database)
        await delete_topics(settings)
    gateway_p99, floor_p99 = figures["gateway"]["p99_ms"], figures["floor_aiokafka_websockets"]["p99_ms"]
    return {**figures, "p99_ratio_to_floor": round(gateway_p99 / max(floor_p99, 1.0), 2),
            "target_p99_ms": 100, "met": figures["gateway"]["missing"] == 0 and gateway_p99 <= 100}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--clients-process":
        asyncio.run(_clients(sys.argv[2], int(sys.argv[3])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--floor-process":
        asyncio.run(_floor(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="websocket clients (default 1000)")
    parser.add_argument("--predictions", type=int, default=120, help="predictions measured (default 120)")
    parser.add_argument("--rate", type=float, default=4.0, help="predictions per second (default 4)")
    args = parser.parse_args()
    result = asyncio.run(run(args.clients, args.predictions, args.rate))
    print(f"\nwebsocket fan-out: {args.clients} clients, {args.predictions} predictions at {args.rate}/s")
    print(f"{'':<28}{'delivered':>10}{'missing':>9}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    for name in ("gateway", "floor_aiokafka_websockets"):
        row = result[name]
        print(f"{name:<28}{row['delivered']:>10}{row['missing']:>9}{row['p50_ms']:>8.0f}{row['p90_ms']:>8.0f}"
              f"{row['p99_ms']:>8.0f}{row['max_ms']:>8.0f}")
    print(f"p99 ratio to the floor: {result['p99_ratio_to_floor']}; target p99 <= 100 ms: "
          f"{'met' if result['met'] else 'MISSED'}")
    write_result("websocket", result)


if __name__ == "__main__":
    main()
