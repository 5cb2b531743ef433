"""`candlecast migrate`: what every service expects to exist — the database, its schema, the topics.

Part of the product (the Compose file runs it before the services), so it needs nothing of the
local launcher in `shared.infra`.
"""

from __future__ import annotations

import argparse
import asyncio

from shared.config import Settings, get_settings
from shared.messaging.topics import ensure_topics
from shared.storage.migrate import ensure_database, migrate


def prepare(settings: Settings) -> None:
    """Database, migrations and topics, each created only when missing."""

    async def _prepare() -> None:
        if await ensure_database(settings.database):
            print("database: created", flush=True)
        applied = await migrate(settings.database, settings.readonly_password)
        print(f"migrations: {', '.join(applied) if applied else 'up to date'}", flush=True)
        created = await ensure_topics(settings)
        print(f"topics: {'created ' + ', '.join(created) if created else 'up to date'}", flush=True)

    asyncio.run(_prepare())


def run(args: argparse.Namespace) -> int:
    prepare(get_settings())
    return 0
