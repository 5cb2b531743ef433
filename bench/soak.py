"""`make soak MINUTES=10`: the random-fault soak on the local stack, three Kafka nodes.

Starts (or takes over) the local stack with three brokers: the services of a running demo are
stopped, a one-node Kafka is replaced by three nodes (their data kept apart), Postgres reused.
The soak has its own database (`candlecast_soak`), topics (`soak-`) and models, made anew each run,
and a tiny champion so predictions start at once; the trainer trains the fastest kind (gbm) so
its daily retraining (every 144 s at 600x) loads the 2 cores as a real one would, not more.
The stand-in replays the real archives in ../shared/data (else generated candles) at 600x.

Leaves the stack running (`candlecast status`, the dashboard; `make down` stops it) and writes
bench/results/soak.json; `--seed` replays a run's choice of faults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from shared.config import Settings, get_settings
from shared.infra.kafka import LocalKafka
from shared.infra.postgres import LocalPostgres
from shared.infra.stack import default_demo_data, down
from shared.storage import with_database
from shared.storage.prepare import prepare
from testkit.infra import drop_database
from testkit.kafka import delete_topics
from testkit.models import make_champion, train_tiny
from testkit.soak import run_soak
from testkit.soak_stack import SoakStack

RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"


def soak_settings(base: Settings) -> Settings:
    sim = f"127.0.0.1:{base.sim_port}"
    return base.model_copy(update={
        "kafka_brokers": 3,
        "database_url": with_database(base.database, "candlecast_soak"),
        "topic_prefix": f"{base.topic_prefix}soak-",
        "model_dir": base.data_dir / "soak" / "models",
        "symbols": ["BTCUSDT"], "intervals": ["5m"], "interval": "5m",
        "model_kinds": ["gbm"],
        "binance_rest_url": f"http://{sim}", "binance_ws_url": f"ws://{sim}",
    })


def sim_args(data: Path | None) -> list[str]:
    """600x; the real 5m archives (from 91 days in, after the backfill's 90), else 120 generated days."""
    if data is not None:
        return ["--speed", "600", "--csv-dir", str(data), "--start", "+91d"]
    return ["--speed", "600", "--generate-days", "120", "--symbols", "BTCUSDT", "--start", "+91d"]


async def fresh(settings: Settings) -> None:
    """The soak's database and topics made anew, and a tiny champion registered."""
    import asyncpg

    await delete_topics(settings)
    await drop_database(settings.database)
    await asyncio.to_thread(prepare, settings)
    path = await asyncio.to_thread(train_tiny, settings.model_dir, "BTCUSDT", "5m")
    conn = await asyncpg.connect(settings.database)
    try:
        await make_champion(conn, path, "BTCUSDT", "5m")
    finally:
        await conn.close()


def start_infra(base: Settings) -> tuple[LocalKafka, LocalPostgres]:
    three = base.model_copy(update={"kafka_brokers": 3})
    kafka = LocalKafka(three)
    down(base, keep_infra=True)  # a demo's services
    if not all(node.process.running() for node in kafka.nodes):
        LocalKafka(base).down()  # whatever ran (one node after `make demo`): the recorded nodes stop
        print(f"kafka:    {kafka.up()}", flush=True)
    postgres = LocalPostgres(three)
    print(f"postgres: {postgres.up()}", flush=True)
    return kafka, postgres


async def soak(minutes: float, seed: int | None) -> dict[str, Any]:
    base = get_settings()
    kafka, postgres = await asyncio.to_thread(start_infra, base)
    settings = soak_settings(base)
    await fresh(settings)
    stack = SoakStack(settings, kafka, postgres, sim_args(default_demo_data()))
    await stack.start_all()
    print(f"stack:    up (dashboard http://127.0.0.1:{settings.gateway_port}/, logs {settings.data_dir / 'logs'})")
    return await run_soak(stack, minutes, seed)


def print_report(report: dict[str, Any]) -> None:
    print(f"\nsoak report (seed {report['seed']}, {report['minutes']:g} minutes)")
    for key in ("candles", "predictions", "lost", "doubled", "max_recovery_s", "unrecovered", "poison_sent",
                "dead_letters", "died_on_their_own"):
        print(f"  {key:<20}{report[key]}")
    print(f"  {'kind':<18}{'count':>6}{'max recovery s':>16}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    latency = report["latency_ms"]
    for kind in ("quiet", *report["faults"]):
        count = report["faults"].get(kind, "")
        lat = latency.get(kind, {})
        recovery = report["recovery_s_by_kind"].get(kind, "")
        print(f"  {kind:<18}{count!s:>6}{recovery!s:>16}{lat.get('p50_ms', '-')!s:>10}"
              f"{lat.get('p99_ms', '-')!s:>10}{lat.get('max_ms', '-')!s:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    report = asyncio.run(soak(args.minutes, args.seed))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"\nwritten to {RESULTS}; the stack is still running (make down stops it)")
    raise SystemExit(0 if report["lost"] == 0 and report["doubled"] == 0 else 1)


if __name__ == "__main__":
    main()
