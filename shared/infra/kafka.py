"""A real single-node Apache Kafka (KRaft) for development and tests.

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
from shared.infra.process import ManagedProcess, port_open, wait_until

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


class LocalKafka:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.data_dir / "kafka"
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_port + 1
        self.process = ManagedProcess("kafka", settings.data_dir / "run", settings.data_dir / "logs")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                f"num.partitions={self.settings.kafka_partitions}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=6",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
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
        """Start the broker unless it (or another on the port) already runs; idempotent."""
        if self.process.running() or port_open("127.0.0.1", self.port):
            return "already running"
        lib = ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(self._properties())
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = _random_cluster_id()
            subprocess.run(
                self._java(lib, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        self.process.start(self._java(lib, "kafka.Kafka", str(props), heap="512m"))
        try:
            wait_until(lambda: port_open("127.0.0.1", self.port), timeout, f"Kafka on port {self.port}")
        except TimeoutError:
            raise RuntimeError(f"Kafka did not start; see {self.process.log_file}") from None
        return f"started (pid {self.process.pid()})"

    def down(self) -> bool:
        return self.process.stop(timeout=30)

    def status(self) -> str:
        pid = self.process.pid()
        if pid is not None:
            return f"running, pid {pid}, {self.bootstrap}"
        if port_open("127.0.0.1", self.port):
            return f"port {self.port} answers, not started by candlecast"
        return "stopped"


def _random_cluster_id() -> str:
    """Like Kafka's own `Uuid.randomUuid`: never starting with '-', which the tool would take for an option."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
