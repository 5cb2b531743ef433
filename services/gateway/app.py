"""The FastAPI application: routers per resource, one read-only pool, Kafka for live data, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.gateway.cache import StreamCache
from services.gateway.limits import PredictLimiter
from services.gateway.live import Hub, build_broker, keep_connected
from services.gateway.metrics import LIVE_CONNECTED, MetricsMiddleware
from services.gateway.routers import admin, health, live, market, models, monitoring, pages, predict
from services.gateway.security import DEFAULT_MAX_BODY_BYTES, BodyLimit, add_cors
from services.gateway.validation import HistoryCandle, PredictRequest
from shared.config import Settings
from shared.model.champions import ChampionCache
from shared.storage import create_pool

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    hub = Hub()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(settings.database_readonly)
        app.state.champions = ChampionCache(app.state.pool, settings.model_dir)
        broker = build_broker(settings, hub, app.state.cache)
        app.state.broker = broker
        app.state.kafka_connected = asyncio.Event()
        connecting = asyncio.create_task(keep_connected(broker, app.state.kafka_connected))
        warming = asyncio.create_task(warm(app.state.champions, settings))
        try:
            yield
        finally:
            for task in (connecting, warming):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await broker.stop()
            LIVE_CONNECTED.set(0)
            await app.state.pool.close()

    app = FastAPI(
        title="candlecast gateway",
        description=(
            "Candles, next-candle predictions, model metrics and drift for Binance symbols. "
            "Times are UTC epoch milliseconds. Live predictions: `WS /ws/predictions`; "
            "the Kafka topics: `/asyncapi`; the dashboard: `/`."
        ),
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.hub = hub
    app.state.cache = StreamCache(ttl=settings.gateway_cache_seconds)
    app.state.predict_limiter = PredictLimiter(settings.predict_max_concurrent, settings.predict_rate_per_client,
                                               settings.predict_burst)
    for router in (health, market, models, monitoring, predict, admin, live, pages):
        app.include_router(router.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    app.add_middleware(BodyLimit, default=DEFAULT_MAX_BODY_BYTES, limits={"/predict": predict.MAX_BODY_BYTES})
    app.add_middleware(MetricsMiddleware)
    add_cors(app, settings.cors_origins)
    _declare_predict_body(app)
    return app


async def warm(champions: ChampionCache, settings: Settings) -> None:
    """Load every stream's champion at start, not at the first `POST /predict`: loading imports
    the model's library and builds it, a second of held GIL during which every read waited (seen
    as a 1.06 s maximum of `GET /health` in the first flood after a start, 65 ms in the next)."""
    for symbol, interval in settings.streams:
        try:
            await champions.refresh(symbol, interval)
        except Exception as exc:  # the first request will try again, and say why
            log.warning("champion of %s %s not loaded at start: %s", symbol, interval, exc)


def _declare_predict_body(app: FastAPI) -> None:
    """Put `PredictRequest` into the OpenAPI components: `POST /predict` reads its body by hand."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = default_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (PredictRequest, HistoryCandle):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
            model_schema.pop("$defs", None)
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
