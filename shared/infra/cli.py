"""`candlecast infra up|down|status`: the local Kafka and Postgres (the `local` extra).

Local Kafka and Postgres are started only when the settings name none: with
`CANDLECAST_KAFKA_BOOTSTRAP` or `CANDLECAST_DATABASE_URL` set, the given ones are used as they are.
"""

from __future__ import annotations

import argparse
import logging

from shared.config import Settings, get_settings
from shared.infra.kafka import LocalKafka
from shared.infra.postgres import LocalPostgres
from shared.storage.prepare import prepare

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "infra":
        parser.add_argument("action", choices=["up", "down", "status"])
        add_brokers(parser)


def add_brokers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--brokers", type=int, choices=(1, 3), default=None,
                        help="local Kafka nodes (default CANDLECAST_KAFKA_BROKERS, 1); 3: replicated topics")


def with_brokers(settings: Settings, brokers: int | None) -> Settings:
    return settings if brokers is None else settings.model_copy(update={"kafka_brokers": brokers})


def infra_up(settings: Settings, prepared: Settings | None = None) -> None:
    """Start what `settings` does not name elsewhere, then prepare `prepared` (default: the same)."""
    if not settings.kafka_bootstrap:
        print(f"kafka:    {LocalKafka(settings).up()}", flush=True)
    if not settings.database_url:
        print(f"postgres: {LocalPostgres(settings).up()}", flush=True)
    prepare(prepared or settings)



def infra_down(settings: Settings) -> None:
    if not settings.kafka_bootstrap:
        print(f"kafka:    {'stopped' if LocalKafka(settings).down() else 'was not running'}")
    if not settings.database_url:
        print(f"postgres: {'stopped' if LocalPostgres(settings).down() else 'was not running'}")


def infra_status(settings: Settings) -> list[tuple[str, str]]:
    rows = []
    if settings.kafka_bootstrap:
        rows.append(("kafka", f"external, {settings.kafka_bootstrap}"))
    else:
        rows.append(("kafka", LocalKafka(settings).status()))
    if settings.database_url:
        rows.append(("postgres", "external (CANDLECAST_DATABASE_URL)"))
    else:
        rows.append(("postgres", LocalPostgres(settings).status()))
    return rows


def run(args: argparse.Namespace) -> int:
    settings = with_brokers(get_settings(), args.brokers)
    if args.action == "up":
        infra_up(settings)
    elif args.action == "down":
        infra_down(settings)
    else:
        for name, state in infra_status(settings):
            print(f"{name:<10} {state}")
    return 0
