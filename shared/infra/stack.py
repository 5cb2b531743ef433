"""`candlecast up|down|status`: the whole system on one machine, each part a background process.

`up --demo` also starts the Binance stand-in (`candlecast sim`) and points the services at it,
so a machine without internet shows everything working.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from shared.config import PROJECT_ROOT, Settings, get_settings
from shared.infra.cli import add_brokers, infra_down, infra_status, infra_up, with_brokers
from shared.infra.process import ManagedProcess, port_open, wait_until
from shared.storage import with_database

SERVICES = ("ingestor", "predictor", "trainer", "gateway")


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "up":
        parser.add_argument("--demo", action="store_true", help="feed the system from the local Binance stand-in")
        parser.add_argument(
            "--data",
            type=Path,
            default=None,
            help="folder of Binance archive CSVs for the demo (default ../shared/data when present, else generated)",
        )
        parser.add_argument("--speed", type=float, default=600.0, help="demo replay speed factor")
        add_brokers(parser)
    if name == "down":
        parser.add_argument("--keep-infra", action="store_true", help="stop the services only")


def service_port(settings: Settings, name: str) -> int:
    ports = {
        "ingestor": settings.ingestor_metrics_port,
        "predictor": settings.predictor_metrics_port,
        "trainer": settings.trainer_metrics_port,
        "gateway": settings.gateway_port,
        "sim": settings.sim_port,
    }
    return ports[name]


def process(settings: Settings, name: str) -> ManagedProcess:
    return ManagedProcess(name, settings.data_dir / "run", settings.data_dir / "logs")


def service_env(settings: Settings) -> dict[str, str]:
    """The settings a child service must share with this command (the rest it reads itself)."""
    return {
        "CANDLECAST_KAFKA_BOOTSTRAP": settings.kafka,
        "CANDLECAST_KAFKA_BROKERS": str(settings.kafka_brokers),
        "CANDLECAST_DATABASE_URL": settings.database,
        "CANDLECAST_TOPIC_PREFIX": settings.topic_prefix,
        "CANDLECAST_DATA_DIR": str(settings.data_dir),
        "CANDLECAST_MODEL_DIR": str(settings.model_dir),
        "CANDLECAST_GATEWAY_PORT": str(settings.gateway_port),
        "CANDLECAST_INGESTOR_METRICS_PORT": str(settings.ingestor_metrics_port),
        "CANDLECAST_PREDICTOR_METRICS_PORT": str(settings.predictor_metrics_port),
        "CANDLECAST_TRAINER_METRICS_PORT": str(settings.trainer_metrics_port),
        "CANDLECAST_SIM_PORT": str(settings.sim_port),
    }


def _demo_env(settings: Settings) -> dict[str, str]:
    base = f"127.0.0.1:{settings.sim_port}"
    return {"CANDLECAST_BINANCE_REST_URL": f"http://{base}", "CANDLECAST_BINANCE_WS_URL": f"ws://{base}"}


def default_demo_data() -> Path | None:
    candidate = PROJECT_ROOT.parent / "shared" / "data"
    return candidate if any(candidate.glob("*.csv")) else None


def demo_folders(data: Path) -> list[str]:
    """The archive folders the stand-in reads: `data`, and `data/daily` if it holds archives."""
    daily = data / "daily"
    return [str(data), *([str(daily)] if any(daily.glob("*.csv")) or any(daily.glob("*.zip")) else [])]


DEMO_SUFFIX = "_demo"  # candlecast -> candlecast_demo
DEMO_PREFIX = "demo-"


def demo_settings(settings: Settings) -> Settings:
    """The demo's own database, topics and models on the same Kafka and Postgres: the stand-in's
    candles, predictions and models never mix with Binance's (`make up` after `make demo`)."""
    return settings.model_copy(update={
        "database_url": with_database(settings.database, urlsplit(settings.database).path.strip("/") + DEMO_SUFFIX),
        "topic_prefix": f"{settings.topic_prefix}{DEMO_PREFIX}",
        "model_dir": settings.data_dir / "demo" / "models",
    })


async def newest_stored_close(settings: Settings) -> int | None:
    """Close time of the newest candle stored for the configured streams (None: nothing yet)."""
    conn = await asyncpg.connect(settings.database)
    try:
        value = await conn.fetchval("SELECT max(close_time) FROM candles WHERE interval = $1 AND symbol = ANY($2)",
                                    settings.interval, settings.symbols)
    finally:
        await conn.close()
    return None if value is None else int(value)


def up(settings: Settings, demo: bool = False, data: Path | None = None, speed: float = 600.0) -> None:
    infra = settings
    if demo:
        settings = demo_settings(settings)
    infra_up(infra, settings)
    env = {**os.environ, **service_env(settings)}
    names: list[str] = list(SERVICES)
    if demo:
        env.update(_demo_env(settings))
        data = data or default_demo_data()
        sim_args = ["--port", str(settings.sim_port), "--speed", str(speed)]
        # Generated: 365 days, of which the first 91 are history; the rest streams for ~11 h at 600x.
        # Archives: the 5m files, and Binance's 1d monthly files in `daily/` beside them when there
        # (the 1d stream's history from 2017; without them the stand-in aggregates its 5m data).
        sim_args += ["--csv-dir", *demo_folders(data)] if data else ["--generate-days", "365"]
        newest = asyncio.run(newest_stored_close(settings))
        if newest is not None:  # a restarted demo goes on after what it already has, without a pause
            sim_args += ["--start", str(newest + 1)]
            print(f"sim:      resuming after the newest stored candle (closed {newest})", flush=True)
        process(settings, "sim").start([sys.executable, "-m", "shared.cli", "sim", *sim_args], env=env,
                                       cwd=PROJECT_ROOT)
        wait_until(lambda: port_open("127.0.0.1", settings.sim_port), 60, "the Binance stand-in")
        names.insert(0, "sim")
        print(f"sim:      Binance stand-in on 127.0.0.1:{settings.sim_port} ({data or 'generated data'})")
    for name in SERVICES:
        process(settings, name).start([sys.executable, "-m", "shared.cli", name], env=env, cwd=PROJECT_ROOT)
    for name in SERVICES:
        port = service_port(settings, name)
        wait_until(lambda p=port: port_open("127.0.0.1", p), 120, f"{name} on port {port}")  # type: ignore[misc]
        print(f"{name + ':':<10}running on port {port}", flush=True)
    print(f"\ndashboard: http://127.0.0.1:{settings.gateway_port}/   API docs: http://127.0.0.1:{settings.gateway_port}/docs")
    print(f"logs: {settings.data_dir / 'logs'}")


def down(settings: Settings, keep_infra: bool = False) -> None:
    for name in (*reversed(SERVICES), "sim"):
        if process(settings, name).stop():
            print(f"{name + ':':<10}stopped")
    if not keep_infra:
        infra_down(settings)


def status(settings: Settings) -> list[tuple[str, str]]:
    rows = infra_status(settings)
    for name in (*SERVICES, "sim"):
        proc = process(settings, name)
        pid = proc.pid()
        port = service_port(settings, name)
        if pid is None:
            if name != "sim":
                rows.append((name, "stopped"))
            continue
        answering = "answering" if port_open("127.0.0.1", port) else "not answering"
        rows.append((name, f"running, pid {pid}, port {port} {answering}, log {proc.log_file}"))
    return rows


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.command == "up":
        up(with_brokers(settings, args.brokers), demo=args.demo, data=args.data, speed=args.speed)
    elif args.command == "down":
        down(settings, keep_infra=args.keep_infra)
    else:
        for name, state in status(settings):
            print(f"{name:<10} {state}")
    return 0
