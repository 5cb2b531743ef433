"""`candlecast gateway`: wiring only; the API lives in app.py and routers/."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
from types import FrameType

import uvicorn
from fastapi import FastAPI

from services.gateway.app import create_app
from shared.config import get_settings


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=None, help="port (default: CANDLECAST_GATEWAY_PORT, 8000)")


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def app_from_environment() -> FastAPI:
    """Each worker's app (uvicorn imports it by name in a new process)."""
    return create_app(get_settings())


def run(args: argparse.Namespace) -> int:
    settings = get_settings()  # validated by the `candlecast` command before it got here
    port = getattr(args, "port", None) or settings.gateway_port
    host = getattr(args, "host", "0.0.0.0")
    workers = settings.gateway_workers or os.cpu_count() or 1
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler it
    # found; with the default one the process would end "killed by SIGTERM" instead of exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
        return 0
    # Several processes: Prometheus counts go to files that /metrics adds up (prometheus_client's
    # multiprocess mode), set before the workers import it.
    metrics_dir = tempfile.mkdtemp(prefix="candlecast-gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run("services.gateway.main:app_from_environment", factory=True, workers=workers, host=host,
                    port=port, log_level="info", access_log=False)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
