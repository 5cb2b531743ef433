"""Outside the REST API: the dashboard page, Prometheus metrics and the AsyncAPI document."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from services.gateway.asyncapi import asyncapi_document
from services.gateway.deps import SettingsDep

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus exposition: request rate and latency by route, process CPU and memory, live fan-out;
    with several workers, every worker's counts added up (no process metrics then)."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/asyncapi")
async def asyncapi(settings: SettingsDep) -> dict[str, Any]:
    """The Kafka topics and their event contracts, as FastStream generates them (AsyncAPI 3.0)."""
    return asyncapi_document(settings)
