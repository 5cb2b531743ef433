"""The random-fault soak for two minutes (`make soak` runs it for ten on the local stack): three
Kafka nodes, the stand-in at 600x, every service as a process; a fault every 20-40 s chosen at
random (the seed is in every failure message), overlapping when one is still held. Afterwards
nothing is lost or doubled over the whole range, every fault was recovered from, no service died
of one, and every poison record went to the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from testkit.infra import ThrowawayInfra, drop_database
from testkit.kafka import delete_topics
from testkit.services import with_free_ports
from testkit.soak import run_soak
from testkit.soak_stack import SoakStack
from tests.faults.support import champion


@pytest.mark.slow
@pytest.mark.timeout(900)  # two minutes of faults, the warm-up and the settle: ~4 minutes here
async def test_two_minutes_of_random_faults_lose_and_double_nothing(
        cluster: ThrowawayInfra, tmp_path: Path, tiny_model_5m: Path) -> None:
    settings = with_free_ports(await cluster.settings_for_test(model_dir=tmp_path / "models"))
    sim = f"127.0.0.1:{settings.sim_port}"
    settings = settings.model_copy(update={
        "data_dir": tmp_path, "symbols": ["BTCUSDT"], "intervals": ["5m"], "interval": "5m", "backfill_days": 1,
        "model_kinds": ["gbm"], "binance_rest_url": f"http://{sim}", "binance_ws_url": f"ws://{sim}",
    })
    await champion(settings, tiny_model_5m)
    sim_args = ["--speed", "600", "--generate-days", "5", "--symbols", "BTCUSDT", "--start", "+2d"]
    stack = SoakStack(settings, cluster.kafka, cluster.postgres, sim_args)
    try:
        await stack.start_all()
        report = await run_soak(stack, minutes=2, warmup_within=240, settle_within=300)
    finally:
        stack.stop_all()
        for node in cluster.kafka.nodes:  # as the cluster was, whatever the soak left
            await asyncio.to_thread(cluster.kafka.start_node, node)
        await asyncio.to_thread(cluster.postgres.up)
    try:
        said = json.dumps({k: v for k, v in report.items() if k != "latency_ms"})
        assert report["lost"] == 0 and report["doubled"] == 0, said
        assert report["unrecovered"] == 0 and report["died_on_their_own"] == [], said
        assert sum(report["faults"].values()) >= 3 and report["predictions"] >= 200, said
        assert report["dead_letters"] >= report["poison_sent"], said
    finally:
        await delete_topics(settings)
        await drop_database(settings.database)
