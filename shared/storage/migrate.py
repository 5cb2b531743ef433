"""Versioned SQL migrations: each file in `migrations/` runs once, in order, in a transaction.

The applied versions are recorded in `schema_migrations`; an advisory lock makes concurrent
start-ups (four services at once) apply each file exactly once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_ID = 0x63616E646C65  # "candle"


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
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied_now.append(version)
                log.info("applied migration %s", version)
            if readonly_password:
                # Passwords stay out of the SQL files: they come from settings.
                await conn.execute(
                    f"ALTER ROLE candlecast_reader PASSWORD {_quote_literal(readonly_password)}"
                )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()
    return applied_now


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
