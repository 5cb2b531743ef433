"""`candlecast gateway`: wiring only; the API lives in app.py and routers/."""

from __future__ import annotations

import argparse

import uvicorn

from services.gateway.app import create_app
from shared.config import get_settings


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=None, help="port (default: CANDLECAST_GATEWAY_PORT, 8000)")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    port = getattr(args, "port", None) or settings.gateway_port
    uvicorn.run(create_app(settings), host=getattr(args, "host", "0.0.0.0"), port=port, log_level="info",
                access_log=False)
    return 0
