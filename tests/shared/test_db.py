import asyncpg
import pytest

from shared.config import Settings
from shared.storage.migrate import migrate, migration_files


async def test_migrations_apply_once_and_are_recorded(database_url: str, db: asyncpg.Connection) -> None:
    versions = [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [p.stem for p in migration_files()]
    assert await migrate(database_url) == []  # a second run applies nothing
    assert await migrate(database_url) == []
    tables = {r["tablename"] for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"candles", "futures", "job_logs", "models", "drift_events", "series"} <= tables


async def test_btc_candles_view_keeps_the_original_queries_working(db: asyncpg.Connection) -> None:
    await db.execute(
        """INSERT INTO candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
               quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume)
           VALUES ('BTCUSDT', '5m', 1700000000000, 1700000299999, 1, 2, 0.5, 1.5, 10, 15, 3, 4, 6),
                  ('ETHUSDT', '5m', 1700000000000, 1700000299999, 1, 2, 0.5, 1.5, 10, 15, 3, 4, 6)"""
    )
    rows = await db.fetch("SELECT time, open, high, low, close, volume FROM btc_candles")
    assert len(rows) == 1
    assert rows[0]["close"] == 1.5 and rows[0]["time"].timestamp() == 1_700_000_000


async def test_one_champion_per_symbol(db: asyncpg.Connection) -> None:
    insert = (
        "INSERT INTO models (version, symbol, interval, status, artifact_path)"
        " VALUES ($1, 'BTCUSDT', '5m', $2, '/x')"
    )
    await db.execute(insert, "v1", "champion")
    await db.execute(insert, "v2", "candidate")
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(insert, "v3", "champion")


async def test_readonly_role_reads_but_cannot_write(database_url: str) -> None:
    reader_url = Settings(database_url=database_url, readonly_password="candlecast_reader").database_readonly
    conn = await asyncpg.connect(reader_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM candles") == 0
        for statement in (
            "INSERT INTO job_logs (job_name, status) VALUES ('x', 'running')",
            "DELETE FROM candles",
            "UPDATE models SET status = 'retired'",
            "CREATE TABLE sneaky (x int)",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_databases_migrated_at_once_on_one_server_all_get_the_role(postgres_url: str) -> None:
    """The role is the cluster's: eight databases migrated together (the demo's beside `make up`'s,
    test workers) change it at the same moment; every migration still succeeds."""
    import asyncio
    import uuid

    from shared.storage import with_database
    from shared.storage.migrate import ensure_database
    from testkit.infra import drop_database

    urls = [with_database(postgres_url, f"test_{uuid.uuid4().hex[:12]}") for _ in range(8)]
    try:
        for url in urls:
            await ensure_database(url)
        applied = await asyncio.gather(*(migrate(url, readonly_password="candlecast_reader") for url in urls))
        assert applied == [[p.stem for p in migration_files()]] * len(urls)
    finally:
        for url in urls:
            await drop_database(url)
