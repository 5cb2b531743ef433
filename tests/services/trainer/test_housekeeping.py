"""Bounded growth: old shadow predictions (and, when asked, old futures) are pruned per stream,
counted back from the stream's newest row; topics get their retention from the registry."""

from __future__ import annotations

import asyncpg

from services.trainer.housekeeping import prune
from shared.config import Settings
from shared.messaging import topics
from shared.storage import create_pool
from testkit.waiting import eventually

DAY = 86_400_000
HOUR = 3_600_000
START = 1_704_067_200_000


async def _rows(db: asyncpg.Connection, table: str, interval: str = "5m") -> list[int]:
    return [r["time"] for r in await db.fetch(f"SELECT time FROM {table} WHERE interval = $1 ORDER BY time", interval)]


async def test_old_rows_are_pruned_per_stream_from_its_newest_row(settings: Settings, db: asyncpg.Connection) -> None:
    # 40 days of hourly rows in each table, for 5m and for 1d; a 2024 replay, years before "now".
    for table in ("futures", "shadow_futures"):
        for interval in ("5m", "1d"):
            await db.executemany(
                f"INSERT INTO {table} (symbol, interval, time, base_time, pred_open, pred_high, pred_low, "
                "pred_close, pred_amplitude, p_up, model_version) "
                "VALUES ('BTCUSDT', $1, $2, $2, 1, 1, 1, 1, 0, 0.5, 'v')",
                [(interval, START + i * HOUR) for i in range(40 * 24)])
    newest = START + (40 * 24 - 1) * HOUR
    two = settings.model_copy(update={"intervals": ["5m", "1d"], "interval": "5m", "shadow_retention_days": 30.0,
                                      "futures_retention_days": 0.0, "drift_window": 288})
    pool = await create_pool(settings.database)
    try:
        deleted = await prune(pool, two)
        assert await prune(pool, two) == {"shadow_futures": 0}  # nothing more to do
    finally:
        await pool.close()
    kept = await _rows(db, "shadow_futures")
    assert kept[0] == newest - 30 * DAY and kept[-1] == newest  # 30 days back from the newest row
    # 1d: 288 candles of drift window are 288 days, more than 30: every row of the 40 days stays.
    assert len(await _rows(db, "shadow_futures", "1d")) == 40 * 24
    assert deleted == {"shadow_futures": 40 * 24 - len(kept)}
    assert len(await _rows(db, "futures")) == 40 * 24  # futures: kept for good by default


def test_every_topic_has_an_explicit_retention() -> None:
    settings = Settings(topic_retention_hours={"predictions": 48})
    assert topics.retention_ms(settings, topics.CANDLES) == "-1"
    assert topics.retention_ms(settings, topics.CANDLES_LIVE) == str(24 * HOUR)
    assert topics.retention_ms(settings, topics.DEAD_LETTER) == str(30 * 24 * HOUR)
    assert topics.retention_ms(settings, topics.PREDICTIONS) == str(48 * HOUR)


async def test_topics_are_created_and_kept_with_their_retention(settings: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    changed = settings.model_copy(update={"topic_retention_hours": {"dead-letter": 2}})
    await topics.ensure_topics(changed)  # the test's topics exist: their retention is altered
    names = {t: settings.topic(t) for t in (topics.CANDLES, topics.CANDLES_LIVE, topics.DEAD_LETTER)}
    wanted = {names[topics.CANDLES]: "-1", names[topics.CANDLES_LIVE]: str(24 * HOUR),
              names[topics.DEAD_LETTER]: str(2 * HOUR)}
    found: dict[str, str] = {}

    async def applied() -> bool:  # the controller accepted it; a broker applies it a moment later
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka)
        await admin.start()
        try:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, {"retention.ms": None}) for name in names.values()])
        finally:
            await admin.close()
        found.update({r[3]: next(e[1] for e in r[4] if e[0] == "retention.ms") for r in response.resources})
        return found == wanted

    await eventually(applied, "the topics' retention", within=10, every=0.5)
    assert found == wanted
    # AlterConfigs replaces a topic's whole set: what a replicated cluster's topics were made with stays.
    assert topics.topic_configs(changed, topics.DEAD_LETTER, 3) == {"retention.ms": str(2 * HOUR),
                                                                     "min.insync.replicas": "2"}


async def test_disk_use_of_postgres_and_of_each_topic_is_measured(settings: Settings, db: asyncpg.Connection) -> None:
    from services.trainer.housekeeping import measure_disk
    from services.trainer.metrics import KAFKA_TOPIC_BYTES, POSTGRES_DATABASE_BYTES, POSTGRES_TABLE_BYTES
    from testkit.kafka import publish_raw

    await publish_raw(settings, topics.DEAD_LETTER, [b"x" * 10_000] * 20)
    await db.executemany(
        "INSERT INTO futures (symbol, interval, time, base_time, pred_open, pred_high, pred_low, pred_close, "
        "pred_amplitude, p_up, model_version) VALUES ('BTCUSDT', '5m', $1, $1, 1, 1, 1, 1, 0, 0.5, 'v')",
        [(START + i * HOUR,) for i in range(5000)])
    pool = await create_pool(settings.database)
    try:
        await measure_disk(pool, settings)
    finally:
        await pool.close()
    database = POSTGRES_DATABASE_BYTES._value.get()
    futures = POSTGRES_TABLE_BYTES.labels("futures")._value.get()
    assert database == await db.fetchval("SELECT pg_database_size(current_database())")
    assert 5000 * 50 < futures < database
    assert KAFKA_TOPIC_BYTES.labels(topics.DEAD_LETTER)._value.get() >= 20 * 10_000  # this test's topic alone
    assert KAFKA_TOPIC_BYTES.labels(topics.CANDLES)._value.get() == 0
