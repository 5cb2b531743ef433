"""`candlecast infra up|down|status` and `candlecast migrate`.

Local Kafka and Postgres are started only when the settings name none: with
`CANDLECAST_KAFKA_BOOTSTRAP` or `CANDLECAST_DATABASE_URL` set, the given ones are used as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from shared.config import Settings, get_settings
from shared.db.migrate import ensure_database, migrate
from shared.infra.kafka import LocalKafka
from shared.infra.postgres import LocalPostgres
from shared.topics import ensure_topics

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "infra":
        parser.add_argument("action", choices=["up", "down", "status"])


def infra_up(settings: Settings) -> None:
    if not settings.kafka_bootstrap:
        print(f"kafka:    {LocalKafka(settings).up()}", flush=True)
    if not settings.database_url:
        print(f"postgres: {LocalPostgres(settings).up()}", flush=True)
    prepare(settings)


def prepare(settings: Settings) -> None:
    """Database, migrations and topics: what every service expects to exist."""

    async def _prepare() -> None:
        if await ensure_database(settings.database):
            print("database: created", flush=True)
        applied = await migrate(settings.database, settings.readonly_password)
        print(f"migrations: {', '.join(applied) if applied else 'up to date'}", flush=True)
        created = await ensure_topics(settings)
        print(f"topics: {'created ' + ', '.join(created) if created else 'up to date'}", flush=True)

    asyncio.run(_prepare())


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
    settings = get_settings()
    if args.command == "migrate":
        prepare(settings)
        return 0
    if args.action == "up":
        infra_up(settings)
    elif args.action == "down":
        infra_down(settings)
    else:
        for name, state in infra_status(settings):
            print(f"{name:<10} {state}")
    return 0
