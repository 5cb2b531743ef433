"""A service as a real process (`python -m shared.cli <service>`), as `candlecast up` runs it.

Fault tests need what only a process has: SIGKILL at a random moment, SIGTERM and an exit code,
a restart with a cold memory, its own metrics endpoint. The settings reach the process as
`CANDLECAST_*` variables, every field spelled out, so the process sees exactly the test's
`Settings` whatever the environment or a `.env` file says.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

from shared.config import PROJECT_ROOT, Settings
from shared.infra.process import port_open
from testkit.ports import free_port

#: The port each service serves: metrics for the three workers, the API for the gateway.
PORT_FIELDS = {
    "ingestor": "ingestor_metrics_port",
    "predictor": "predictor_metrics_port",
    "trainer": "trainer_metrics_port",
    "gateway": "gateway_port",
    "sim": "sim_port",
}


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `get_settings()` in a child process equal `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLECAST_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is None or (name == "interval" and value not in settings.intervals):
            continue  # `interval` left behind by a copy that changed `intervals`: the first is the default
        env[f"CANDLECAST_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def with_free_ports(settings: Settings) -> Settings:
    """Fresh ports for every service, so processes of several tests (or instances) never collide."""
    return settings.model_copy(update={field: free_port() for field in PORT_FIELDS.values()})


class ServiceProcess:
    """One service process; `start()` again after a kill or a stop is a restart (same log file)."""

    def __init__(
        self,
        command: str,
        settings: Settings,
        log_dir: Path,
        *,
        args: Sequence[str] = (),
        name: str | None = None,
        port: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.command = command
        self.settings = settings
        self.args = list(args)
        self.name = name or command
        self.port = port if port is not None else getattr(settings, PORT_FIELDS.get(command, ""), None)
        self.verbose = verbose
        self.log_file = log_dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._expected_exit = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "shared.cli", *(["-v"] if self.verbose else []), self.command, *self.args]
        with self.log_file.open("ab") as log:
            log.write(f"\n===== start {self.starts + 1}: {' '.join(argv[1:])}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, env=settings_env(self.settings), cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.starts += 1
        self._expected_exit = False

    async def started(self, within: float = 60.0) -> ServiceProcess:
        """Start, then wait until the service's port answers (its metrics or API server is up)."""
        self.start()
        await self.wait_port(within)
        return self

    async def wait_port(self, within: float = 60.0) -> None:
        if self.port is None:
            raise ValueError(f"{self.name}: no port to wait for")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await asyncio.to_thread(port_open, "127.0.0.1", self.port):
            self.check_alive()
            if loop.time() > deadline:
                raise AssertionError(f"{self.name} did not open port {self.port} within {within:.0f}s\n{self.tail()}")
            await asyncio.sleep(0.1)

    def kill(self) -> int:
        """SIGKILL: no clean-up of any kind, as in a crash or an OOM kill."""
        return self._signal(signal.SIGKILL, 30.0)

    async def terminate(self, within: float = 60.0) -> int:
        """SIGTERM, then wait for the exit; returns the exit code (fails if it takes longer)."""
        return await asyncio.to_thread(self._signal, signal.SIGTERM, within)

    def stop(self) -> None:
        """Clean-up at the end of a test: SIGTERM, SIGKILL if that does not do, whatever the result."""
        if not self.running:
            return
        try:
            self._signal(signal.SIGTERM, 30.0)
        except AssertionError:
            self.kill()

    def _signal(self, sig: signal.Signals, within: float) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        self._expected_exit = True
        if self.proc.poll() is None:
            children = self.children()
            self.proc.send_signal(sig)
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(
                    f"{self.name} did not exit within {within:.0f}s of {sig.name}\n{self.tail()}"
                ) from None
            if sig == signal.SIGKILL:
                # A killed parent cannot stop its workers; its container (or systemd unit) would.
                for child in children:
                    try:
                        child.kill()
                    except psutil.NoSuchProcess:
                        pass
        return int(self.proc.returncode)

    # -- looking at it -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def check_alive(self) -> None:
        """Raise with the log's tail if the process ended without being told to."""
        if self.proc is not None and not self._expected_exit and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with code {self.proc.returncode}\n{self.tail()}")

    def children(self) -> list[psutil.Process]:
        if not self.running or self.pid is None:
            return []
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def rss_bytes(self) -> int:
        """Resident memory of the process and its children (a trainer's worker counts)."""
        if not self.running or self.pid is None:
            return 0
        total = 0
        try:
            processes = [psutil.Process(self.pid), *self.children()]
        except psutil.NoSuchProcess:
            return 0
        for proc in processes:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass  # a worker that just ended
        return total

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def tail(self, chars: int = 4000) -> str:
        return f"--- {self.log_file} (end) ---\n{self.log_text()[-chars:]}"
