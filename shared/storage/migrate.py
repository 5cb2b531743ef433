"""Versioned SQL migrations: each file in `migrations/` runs once, in order, in a transaction.

The applied versions are recorded in `schema_migrations`; an advisory lock makes concurrent
start-ups (four services at once) apply each file exactly once. That lock is the database's, but
the gateway's role is the cluster's: two databases migrated at once on one server (the demo's
beside `make up`'s, two test workers) may change the role together, which Postgres refuses with
"tuple concurrently updated" or a duplicate role; such a step is tried again (its transaction
rolled back, so it runs whole or not at all).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_ID = 0x63616E646C65  # "candle"
#: Not the seeded `random` (a training seeds it): two services started together must not pause alike.
_JITTER = random.SystemRandom()


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


async def migrate(dsn: str, readonly_password: str | None = None) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for path in migration_files():
                version = path.stem
                if version in done:
                    continue
                await _again_on_role_races(partial(_apply, conn, path.read_text(), version))
                applied_now.append(version)
                log.info("applied migration %s", version)
            if readonly_password:
                # Passwords stay out of the SQL files: they come from settings.
                statement = f"ALTER ROLE candlecast_reader PASSWORD {_quote_literal(readonly_password)}"
                await _again_on_role_races(lambda: conn.execute(statement))
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()
    return applied_now


async def _apply(conn: asyncpg.Connection, sql: str, version: str) -> None:
    async with conn.transaction():
        await conn.execute(sql)
        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)


async def _again_on_role_races(step: Callable[[], Awaitable[object]], attempts: int = 10) -> None:
    """Run `step`; again (up to `attempts` times) when another database's migration changed the
    cluster-wide role at the same moment. The pause is random: with fixed pauses the eight
    migrations of the test met again at each retry and one ran out of five attempts on CI."""
    for attempt in range(1, attempts + 1):
        try:
            await step()
            return
        except (asyncpg.exceptions.InternalServerError, asyncpg.exceptions.DuplicateObjectError,
                asyncpg.exceptions.UniqueViolationError) as exc:
            if attempt == attempts or not _role_race(exc):
                raise
            log.info("the role was changed by another migration at the same moment; again (%s)", exc)
            await asyncio.sleep(_JITTER.uniform(0, 0.05 * attempt))


def _role_race(exc: Exception) -> bool:
    text = str(exc)
    return "concurrently updated" in text or "candlecast_reader" in text or "pg_authid" in text


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def ensure_database(dsn: str) -> bool:
    """Create the database named in `dsn` if missing (connecting to `postgres` to do it)."""
    from urllib.parse import urlsplit

    from shared.storage import with_database

    name = urlsplit(dsn).path.lstrip("/") or "postgres"
    conn = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
            return True
        return False
    finally:
        await conn.close()
