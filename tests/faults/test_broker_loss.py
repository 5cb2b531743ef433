"""A broker lost under load: three KRaft nodes, topics with replication factor 3 and
`min.insync.replicas=2`, the live stand-in at 600x and the pipeline (ingestor, predictor) as
processes. The node leading the `candles` partition is SIGKILLed and started again; then another
is shut down cleanly and started again. Afterwards nothing is lost or doubled in the topic,
`candles` or `futures`, and every replica is back in sync."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.config import Settings
from testkit.infra import ThrowawayInfra, drop_database
from testkit.waiting import eventually
from tests.faults.conftest import Spawn
from tests.faults.support import against, binance, champion, settled, sim_now, topic_duplicates


async def _partition(settings: Settings) -> dict[str, object]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka, request_timeout_ms=15000)
    await admin.start()
    try:
        [topic] = await admin.describe_topics([settings.topic("candles")])
    finally:
        await admin.close()
    [partition] = topic["partitions"]
    return dict(partition)


@pytest.mark.slow
async def test_losing_the_leader_of_candles_loses_and_doubles_nothing(
    cluster: ThrowawayInfra, spawn: Spawn, tmp_path: Path, tiny_model_5m: Path
) -> None:
    settings = await cluster.settings_for_test(model_dir=tmp_path / "models")
    first = await _partition(settings)
    assert sorted(first["replicas"]) == [1, 2, 3] and sorted(first["isr"]) == [1, 2, 3]  # type: ignore[arg-type]
    db = await asyncpg.connect(settings.database)
    try:
        async with binance() as sim:
            config = against(settings, sim)
            await champion(config, tiny_model_5m)
            processes = [spawn(name, config) for name in ("ingestor", "predictor")]
            for process in processes:
                process.start()
            await settled(db, until=await sim_now(sim) + 5 * 300_000, within=120, watch=processes)

            leader = int(first["leader"])  # type: ignore[call-overload]
            node = cluster.kafka.nodes[leader - 1]
            pid = node.process.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(8)  # the stream goes on: a new leader among the two in sync
            await asyncio.to_thread(cluster.kafka.start_node, node)

            async def leader_moved_and_back_in_sync() -> bool:
                try:
                    now = await _partition(settings)
                except KafkaError:  # this check's own request may go to the node still starting
                    return False
                return sorted(now["isr"]) == [1, 2, 3]  # type: ignore[arg-type]

            await eventually(leader_moved_and_back_in_sync, "the killed broker back in sync", within=120,
                             watch=processes)
            other = next(n for n in cluster.kafka.nodes if n.index != leader)
            await asyncio.to_thread(other.process.stop)  # a controlled shutdown (SIGTERM)
            await asyncio.sleep(8)
            await asyncio.to_thread(cluster.kafka.start_node, other)
            await eventually(leader_moved_and_back_in_sync, "the stopped broker back in sync", within=120,
                             watch=processes)

            final = await settled(db, until=await sim_now(sim) + 10 * 300_000, within=150, watch=processes)
        assert final.ok and final.futures_expected > 0, str(final)
        assert await topic_duplicates(config) == []
    finally:
        await db.close()
        await drop_database(settings.database)
