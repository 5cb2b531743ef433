"""The whole pipeline as background processes that a soak may hurt: the stand-in, the four
services, the Kafka nodes and Postgres.

The processes are `ManagedProcess`es with their pid files in `<data_dir>/run`, named as `candlecast
up` names them, so the stack a `make soak` leaves running is the one `candlecast status` shows
and `candlecast down` stops. Each service gets every setting spelled out (`settings_env`), so
what it runs with is exactly the soak's `Settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import psutil

from shared.config import PROJECT_ROOT, Settings
from shared.infra.kafka import KafkaNode, LocalKafka
from shared.infra.postgres import LocalPostgres
from shared.infra.process import ManagedProcess, port_open
from shared.infra.stack import SERVICES, service_port
from testkit.services import settings_env


@dataclass
class SoakStack:
    settings: Settings  # the pipeline's: the stand-in's URLs, database, topic prefix, ports
    kafka: LocalKafka
    postgres: LocalPostgres
    sim_args: list[str]  # `candlecast sim` arguments besides --port
    starts: dict[str, int] = field(default_factory=dict)

    def process(self, name: str) -> ManagedProcess:
        data = self.settings.data_dir
        return ManagedProcess(name, data / "run", data / "logs")

    def start(self, name: str) -> None:
        """Start `name` (a service or "sim") unless it runs: after a kill, this is the restart."""
        args = ["--port", str(self.settings.sim_port), *self.sim_args] if name == "sim" else []
        self.process(name).start([sys.executable, "-m", "shared.cli", name, *args], env=settings_env(self.settings),
                                 cwd=PROJECT_ROOT)
        self.starts[name] = self.starts.get(name, 0) + 1

    async def started(self, name: str, within: float = 120.0) -> None:
        self.start(name)
        port = service_port(self.settings, name)
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(port_open, "127.0.0.1", port):
            if not self.process(name).running():
                raise RuntimeError(f"{name} exited at start; see {self.process(name).log_file}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not open port {port} within {within:.0f}s")
            await asyncio.sleep(0.2)

    async def start_all(self) -> None:
        await self.started("sim")
        for name in SERVICES:
            self.start(name)
        await asyncio.gather(*(self.started(name) for name in SERVICES))

    def running(self, name: str) -> bool:
        return self.process(name).running()

    def signal(self, name: str, sig: signal.Signals) -> bool:
        """Send `sig` to `name`'s process group (the trainer's worker too); False if it is not running."""
        pid = self.process(name).pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        return True

    async def exited(self, name: str, within: float) -> bool:
        """Wait for `name` to exit; SIGKILL it if it takes longer than `within` (returns False then)."""
        pid = self.process(name).pid()
        if pid is None:
            return True
        try:
            await asyncio.to_thread(psutil.Process(pid).wait, within)
            return True
        except psutil.NoSuchProcess:
            return True
        except psutil.TimeoutExpired:
            self.signal(name, signal.SIGKILL)
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
                await asyncio.to_thread(psutil.Process(pid).wait, 10)
            return False

    # -- the servers ---------------------------------------------------------------------------

    def nodes(self) -> list[KafkaNode]:
        return self.kafka.nodes

    def stop_all(self) -> None:
        """Every service and the stand-in (not Kafka or Postgres)."""
        for name in (*reversed(SERVICES), "sim"):
            self.process(name).stop()
