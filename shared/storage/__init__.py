"""Postgres access shared by the services: a pool per process, migrations at start-up."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 5, wait: float = 60.0) -> asyncpg.Pool:
    """A pool, retried while the server starts (services and Postgres start together)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
            assert pool is not None
            return pool
        except (OSError, asyncpg.PostgresError) as exc:
            if loop.time() > deadline:
                raise
            log.warning("database not reachable yet (%s); retrying", exc)
            await asyncio.sleep(1)


def with_database(url: str, name: str) -> str:
    """The same server's URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
