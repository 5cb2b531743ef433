"""The FastAPI application: routers per resource, one read-only pool, Prometheus metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import make_asgi_app

from services.gateway.routers import health
from shared.config import Settings
from shared.db import create_pool


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(settings.database_readonly)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(
        title="candlecast gateway",
        description="Candles, next-candle predictions, model metrics and drift for Binance symbols.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(health.router)
    app.mount("/metrics", make_asgi_app())
    return app
