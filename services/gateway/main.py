"""`candlecast gateway`: wiring only; the API lives in app.py and routers/."""

from __future__ import annotations

import argparse

import uvicorn

from services.gateway.app import create_app
from shared.config import get_settings


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    uvicorn.run(create_app(settings), host="0.0.0.0", port=settings.gateway_port, log_level="info")
    return 0
