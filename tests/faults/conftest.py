"""Fixtures of the fault tests: services as real processes, a Kafka and a Postgres to stop, a model.

Faults that stop Kafka or Postgres use `throwaway` (servers of this test session's own); the
others use the shared servers like every other test, with their own topics and database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from testkit.infra import ThrowawayInfra, drop_database
from testkit.kafka import delete_topics
from testkit.models import train_tiny
from testkit.services import ServiceProcess, with_free_ports

Spawn = Callable[..., ServiceProcess]


@pytest.fixture(scope="session")
async def throwaway() -> AsyncIterator[ThrowawayInfra]:
    """A Kafka and a Postgres that a test may stop and start (started once per session)."""
    infra = ThrowawayInfra()
    try:
        await infra.astart()
        yield infra
    finally:
        await infra.aclose()


@pytest.fixture(scope="session")
async def cluster() -> AsyncIterator[ThrowawayInfra]:
    """Three KRaft nodes (replication factor 3, `min.insync.replicas=2`) and a Postgres, shared by
    the broker-loss test and the soak (each with its own topics and database)."""
    infra = ThrowawayInfra(brokers=3)
    try:
        await infra.astart()
        yield infra
    finally:
        await infra.aclose()


@pytest.fixture
async def throwaway_settings(throwaway: ThrowawayInfra, tmp_path: Path) -> AsyncIterator[Settings]:
    """Like `settings`, on the throw-away servers; the servers are running when the test starts."""
    await asyncio.to_thread(throwaway.start)  # a previous test may have left one stopped
    settings = await throwaway.settings_for_test(model_dir=tmp_path / "models")
    yield settings
    await delete_topics(settings)
    await drop_database(settings.database)


@pytest.fixture(scope="session")
def tiny_model_5m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny trained 5m model (seconds to train), registered as champion by the tests that need it."""
    return train_tiny(tmp_path_factory.mktemp("fault-models"), "BTCUSDT", "5m")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Make service processes (fresh ports each); every one still running is stopped afterwards."""
    made: list[ServiceProcess] = []

    def make(command: str, settings: Settings, **kwargs: Any) -> ServiceProcess:
        process = ServiceProcess(command, with_free_ports(settings), tmp_path / "logs", **kwargs)
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault tests run on one xdist worker, one after another: they share the throw-away servers
    (which some of them stop) and each wants the machine's cores for its services' recovery."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("faults"))
