"""A real Apache Kafka (KRaft) for development and tests: one node, or a cluster of three.

The broker's jars come from Maven Central (`deploy/kafka/pom.xml`, resolved once into a cache
folder shared by every checkout on the machine); the storage is formatted once; the broker runs
as a background process with its data and log under `.data/kafka/`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from shared.config import PROJECT_ROOT, Settings
from shared.infra.process import ManagedProcess, one_at_a_time, port_open, wait_until

POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J = PROJECT_ROOT / "deploy" / "kafka" / "log4j.properties"


def kafka_version() -> str:
    import re

    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert match, "kafka.version missing from deploy/kafka/pom.xml"
    return match.group(1)


def cache_dir() -> Path:
    base = Path(os.environ.get("CANDLECAST_CACHE_DIR", Path.home() / ".cache" / "candlecast"))
    return base / f"kafka-{kafka_version()}"


def ensure_jars() -> Path:
    """Resolve the broker and its runtime dependencies with Maven, once per version."""
    lib = cache_dir() / "lib"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch Kafka's jars; install it or set CANDLECAST_KAFKA_BOOTSTRAP")
    tmp = lib.with_name("lib.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(
        [
            "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
        ],
        check=True,
    )
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    marker.touch()
    return lib


class KafkaNode:
    """One KRaft node (broker and controller) of the local cluster: node `index` (1-based) listens
    on `kafka_port + 2 (index - 1)` and its controller on the port after."""

    def __init__(self, settings: Settings, index: int, count: int) -> None:
        self.index = index
        self.port = settings.kafka_port + 2 * (index - 1)
        self.controller_port = self.port + 1
        self.home = settings.data_dir / "kafka" if count == 1 else settings.data_dir / "kafka" / f"node-{index}"
        name = "kafka" if count == 1 else f"kafka-{index}"
        self.process = ManagedProcess(name, settings.data_dir / "run", settings.data_dir / "logs")

    @property
    def formatted(self) -> bool:
        return (self.home / "data" / "meta.properties").exists()

    def cluster_id(self) -> str | None:
        meta = self.home / "data" / "meta.properties"
        if not meta.exists():
            return None
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
        return None


class LocalKafka:
    """The local KRaft cluster: `settings.kafka_brokers` nodes (1 by default; 3 for the replicated
    setup: topics with replication factor 3 and `min.insync.replicas=2`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.recorded = settings.data_dir / "kafka" / "brokers"  # so a plain `down` stops every node
        self.count = settings.kafka_brokers
        self.nodes = [KafkaNode(settings, i, self.count) for i in range(1, self.count + 1)]
        self.home = self.nodes[0].home
        self.port = self.nodes[0].port
        self.controller_port = self.nodes[0].controller_port
        self.process = self.nodes[0].process

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def _properties(self, node: KafkaNode | None = None) -> str:
        node = node or self.nodes[0]
        replicas = min(3, self.count)
        voters = ",".join(f"{n.index}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={node.index}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={node.home / 'data'}",
                f"num.partitions={self.settings.kafka_partitions}",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={2 if replicas >= 3 else 1}",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=6",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min(2, replicas)}",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.retention.hours=-1",
                "",
            ]
        )

    def _java(self, lib: Path, main: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java", f"-Xmx{heap}",
            f"-Dlog4j.configuration=file:{LOG4J}",
            f"-Dkafka.logs.dir={self.settings.data_dir / 'logs'}",
            "-cp", f"{lib}/*", main, *args,
        ]

    def up(self, timeout: float = 90.0) -> str:
        """Start the nodes unless they (or another server on the first port) already run; idempotent."""
        with one_at_a_time(self.settings.data_dir / "run" / "kafka.lock"):
            return self._up(timeout)

    def _up(self, timeout: float) -> str:
        if all(node.process.running() for node in self.nodes) or port_open("127.0.0.1", self.port):
            return "already running"
        lib = ensure_jars()
        self.recorded.parent.mkdir(parents=True, exist_ok=True)
        self.recorded.write_text(str(self.count))
        cluster_id = self.cluster_id()
        for node in self.nodes:
            self.start_node(node, lib, cluster_id)
        try:
            for node in self.nodes:
                wait_until(lambda n=node: port_open("127.0.0.1", n.port), timeout,  # type: ignore[misc]
                           f"Kafka on port {node.port}")
        except TimeoutError:
            raise RuntimeError(f"Kafka did not start; see {self.settings.data_dir / 'logs'}") from None
        pids = ", ".join(str(node.process.pid()) for node in self.nodes)
        return f"started ({self.count} node{'s' if self.count > 1 else ''}, pid {pids})"

    def start_node(self, node: KafkaNode, lib: Path | None = None, cluster_id: str | None = None) -> None:
        """Format the node's storage once (with the cluster's id) and start it (after a kill, too)."""
        if node.process.running():
            return
        lib = lib or ensure_jars()
        node.home.mkdir(parents=True, exist_ok=True)
        props = node.home / "server.properties"
        props.write_text(self._properties(node))
        if not node.formatted:
            cluster_id = cluster_id or self.cluster_id()
            subprocess.run(
                self._java(lib, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        node.process.start(self._java(lib, "kafka.Kafka", str(props), heap="512m"))

    def cluster_id(self) -> str:
        """The id the nodes' storage was formatted with, or a new one for a cluster not formatted yet."""
        return next((cid for node in self.nodes if (cid := node.cluster_id())), None) or _random_cluster_id()

    def _started_nodes(self) -> list[KafkaNode]:
        """The nodes of the cluster last started here (`up --brokers 3` then a plain `down`)."""
        recorded = int(self.recorded.read_text() or 1) if self.recorded.exists() else self.count
        if recorded == self.count:
            return self.nodes
        return [KafkaNode(self.settings, i, recorded) for i in range(1, recorded + 1)]

    def down(self, timeout: float = 30.0) -> bool:
        """SIGTERM to each node, SIGKILL after `timeout` seconds."""
        stopped = [node.process.stop(timeout=timeout) for node in reversed(self._started_nodes())]
        return any(stopped)

    def status(self) -> str:
        nodes = self._started_nodes()
        states = []
        for node in nodes:
            pid = node.process.pid()
            if pid is not None:
                states.append(f"running, pid {pid}, 127.0.0.1:{node.port}")
            elif port_open("127.0.0.1", node.port):
                states.append(f"port {node.port} answers, not started by candlecast")
            else:
                states.append("stopped")
        if len(nodes) == 1:
            return states[0]
        return "; ".join(f"node {node.index}: {state}" for node, state in zip(nodes, states, strict=True))


def _random_cluster_id() -> str:
    """Like Kafka's own `Uuid.randomUuid`: never starting with '-', which the tool would take for an option."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
