"""The local KRaft cluster's configuration: three voters, replicated internal topics, its ports,
and a plain `down` that finds the nodes a `--brokers 3` start left running."""

from __future__ import annotations

from pathlib import Path

from shared.config import Settings
from shared.infra.kafka import LocalKafka


def test_three_nodes_are_voters_with_replicated_topics_on_their_own_ports(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka_port=30000, kafka_brokers=3, kafka_bootstrap="")
    cluster = LocalKafka(settings)
    assert [(n.index, n.port, n.controller_port) for n in cluster.nodes] == [
        (1, 30000, 30001), (2, 30002, 30003), (3, 30004, 30005)]
    assert cluster.bootstrap == settings.kafka == "127.0.0.1:30000,127.0.0.1:30002,127.0.0.1:30004"
    props = dict(line.split("=", 1) for line in cluster._properties(cluster.nodes[1]).splitlines() if line)
    assert props["node.id"] == "2" and props["listeners"].startswith("PLAINTEXT://127.0.0.1:30002,")
    assert props["controller.quorum.voters"] == "1@127.0.0.1:30001,2@127.0.0.1:30003,3@127.0.0.1:30005"
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("3", "2")
    assert props["offsets.topic.replication.factor"] == "3" and props["log.dirs"].endswith("node-2/data")
    one = dict(line.split("=", 1) for line in LocalKafka(settings.model_copy(update={"kafka_brokers": 1}))
               ._properties().splitlines() if line)
    assert (one["default.replication.factor"], one["min.insync.replicas"], one["node.id"]) == ("1", "1", "1")
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "brokers").write_text("3")  # what `up --brokers 3` records
    single = LocalKafka(settings.model_copy(update={"kafka_brokers": 1}))
    assert [n.process.name for n in single._started_nodes()] == ["kafka-1", "kafka-2", "kafka-3"]
    assert len(single.nodes) == 1  # a plain `up` still starts one node
