"""Test fixtures on the real components: a local Kafka broker and a local PostgreSQL server.

Both are started through the same code as `candlecast infra up` (reusing running ones), once per
session. Every test gets its own topics (a unique prefix) and its own freshly migrated database,
so tests never see each other's data and can run against a developer's running stack. That is
also what lets `make test` run them on two xdist workers: each worker has its own session fixtures
(tiny models, trainer worker), and the two share the one local Kafka and Postgres (their `up` is
locked, so only the first starts them).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from shared.config import Settings
from shared.infra.kafka import LocalKafka
from shared.infra.postgres import LocalPostgres
from shared.messaging import topics
from testkit.infra import drop_database, new_database
from testkit.kafka import delete_topics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The product serves 5m and 1d by default; most tests follow one 5m stream, and those about several
# intervals say which they want.
os.environ.setdefault("CANDLECAST_INTERVALS", "5m")


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings of the shared test infrastructure (the environment may point at external ones)."""
    return Settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(base_settings: Settings) -> str:
    if base_settings.kafka_bootstrap:
        return base_settings.kafka_bootstrap
    LocalKafka(base_settings).up()
    return base_settings.kafka


@pytest.fixture(scope="session")
def postgres_url(base_settings: Settings) -> str:
    if base_settings.database_url:
        return base_settings.database_url
    LocalPostgres(base_settings).up()
    return base_settings.database


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A new, migrated database for this test; dropped afterwards."""
    url = await new_database(postgres_url)
    yield url
    await drop_database(url)


@pytest.fixture
async def settings(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    """Settings for one test: its own topics (created here, deleted after) and its own database."""
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    test_settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=prefix,
        kafka_partitions=1,
        model_dir=tmp_path_factory.mktemp("models"),
    )
    await topics.ensure_topics(test_settings)
    yield test_settings
    await delete_topics(test_settings)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two versions (same weights) of one tiny trained model, trained once per session."""
    from tests.services.predictor.support import train_tiny

    return train_tiny(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def worker() -> Iterator[ProcessPoolExecutor]:
    """The trainer's worker process, shared by the tests (it imports TensorFlow once)."""
    from services.trainer.worker import make_executor, shutdown_executor

    executor = make_executor()
    yield executor
    shutdown_executor(executor)
