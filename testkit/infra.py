"""A Kafka broker and a Postgres server of a test's own, to stop and start at will.

The shared ones (`candlecast infra up`) serve every other test and the developers; a fault test
that stops Kafka for 30 s must not stop theirs. These run from the same code (`LocalKafka`,
`LocalPostgres`) on free ports with their data in a temporary folder, removed at the end.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from shared.config import Settings
from shared.infra.kafka import LocalKafka
from shared.infra.postgres import LocalPostgres
from shared.messaging import topics
from shared.storage import with_database
from shared.storage.migrate import ensure_database, migrate
from testkit.ports import free_port


def free_port_run(count: int = 2) -> int:
    """A free port whose `count - 1` successors are free too (a Kafka node's controller listens on
    port + 1; node i of a cluster on port + 2(i - 1))."""
    for _ in range(200):
        port = free_port()
        if port + count > 65535:
            continue
        sockets = []
        try:
            for offset in range(1, count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return port
    raise RuntimeError(f"no {count} consecutive free ports found")


def free_port_pair() -> int:
    """A free port whose successor is free too (Kafka's controller listens on port + 1)."""
    return free_port_run(2)


async def new_database(server_url: str) -> str:
    """A new, migrated database on the server of `server_url`; returns its URL."""
    url = with_database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    await ensure_database(url)
    await migrate(url, readonly_password="candlecast_reader")
    return url


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def isolated_settings(base: Settings, **changes: Any) -> Settings:
    """`base` with a new database, a new topic prefix (its topics created) and `changes`."""
    settings = base.model_copy(
        update={
            "database_url": await new_database(base.database),
            "topic_prefix": f"f{uuid.uuid4().hex[:10]}-",
            **changes,
        }
    )
    await topics.ensure_topics(settings)
    return settings


class ThrowawayInfra:
    """Kafka (KRaft, one node or `brokers` nodes) and Postgres in `root` (default: a new temporary folder).

    The blocking calls (`start`, `stop_kafka`, ...) wait for the servers; from a test's event
    loop run them with `asyncio.to_thread` so that what lives in the loop keeps running.
    """

    def __init__(self, root: Path | None = None, brokers: int = 1) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="candlecast-infra-"))
        self.settings = Settings(
            data_dir=self.root,
            kafka_bootstrap="",
            kafka_brokers=brokers,
            kafka_port=free_port_run(2 * brokers),
            kafka_partitions=1,
            database_url="",
            postgres_port=free_port(),
            topic_prefix="",
        )
        self.kafka = LocalKafka(self.settings)
        self.postgres = LocalPostgres(self.settings)

    def start(self) -> None:
        self.start_postgres()
        self.start_kafka()

    def start_kafka(self) -> None:
        self.kafka.up()
        if not self.kafka.process.running():
            raise RuntimeError(f"port {self.kafka.port} answers, but not with this test's Kafka")

    def stop_kafka(self) -> None:
        """A clean broker shutdown (SIGTERM); clients see their connections close."""
        self.kafka.down()

    def start_postgres(self) -> None:
        self.postgres.up()

    def stop_postgres(self) -> None:
        """`pg_ctl stop -m fast`: open connections are cut, as in a database crash or failover."""
        self.postgres.down()

    def close(self) -> None:
        """Everything goes, data included. The nodes get 3 s to stop: the last nodes of a cluster
        shut down waiting for a quorum that is gone, and waited the full 30 s each (36 s at the
        end of the test session)."""
        try:
            self.kafka.down(timeout=3)
        finally:
            try:
                self.postgres.down()
            finally:
                shutil.rmtree(self.root, ignore_errors=True)

    async def settings_for_test(self, **changes: Any) -> Settings:
        """Settings on these servers with a database and topics of the test's own."""
        return await isolated_settings(self.settings, **changes)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
