"""`candlecast gateway`: wiring only; the API lives in app.py and routers/."""

from __future__ import annotations

import argparse
import signal
from types import FrameType

import uvicorn

from services.gateway.app import create_app
from shared.config import get_settings


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=None, help="port (default: CANDLECAST_GATEWAY_PORT, 8000)")


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()  # validated by the `candlecast` command before it got here
    port = getattr(args, "port", None) or settings.gateway_port
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler it
    # found; with the default one the process would end "killed by SIGTERM" instead of exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(create_app(settings), host=getattr(args, "host", "0.0.0.0"), port=port, log_level="info",
                access_log=False)
    return 0
