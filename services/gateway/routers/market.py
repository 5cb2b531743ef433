"""Market data and predictions: stored candles, real against predicted, the prospective series."""

from __future__ import annotations

import time
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from services.gateway import queries
from services.gateway.deps import CacheDep, IntervalDep, PagingDep, PoolDep, SettingsDep, SymbolDep
from services.gateway.responses import FastJSON, etag_of, page, page_body, respond
from services.gateway.schemas import CandlePage, FuturePage, LatestPrediction, Problem, SeriesPage, Stream, Symbols
from shared.model.intervals import from_json

router = APIRouter(tags=["market"],
                   responses={404: {"model": Problem, "description": "symbol or interval not served"}})


@router.get("/symbols", response_model=Symbols)
async def symbols(settings: SettingsDep) -> Symbols:
    """The streams this gateway serves: every symbol at every interval (the first of each is every
    endpoint's default)."""
    return Symbols(symbols=settings.symbols, interval=settings.interval, intervals=settings.intervals,
                   streams=[Stream(symbol=s.symbol, interval=s.interval) for s in settings.streams],
                   window=settings.window)


@router.get("/candles", response_model=CandlePage)
async def candles(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    interval: IntervalDep,
    paging: PagingDep,
    request: Request,
) -> Response:
    rows = await queries.candles(pool, symbol, interval, paging)
    return page(request, {
        "symbol": symbol,
        "interval": interval,
        "count": len(rows),
        **paging.cursors([r["open_time"] for r in rows]),
        "items": [dict(r) for r in rows],
    })


def with_intervals(row: Any) -> dict[str, Any]:
    """A row as a dict, its `intervals` (jsonb as text) parsed."""
    item = dict(row)
    item["intervals"] = from_json(item["intervals"]) or None
    return item


@router.get("/series", response_model=SeriesPage)
async def series(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    interval: IntervalDep,
    paging: PagingDep,
    request: Request,
    cache: CacheDep,
    model_version: Annotated[str | None, Query(max_length=200, description="default: the champion")] = None,
) -> Response:
    """Each stored candle beside the candle predicted for it, with the test period flagged.

    Predictions come from the model's own series (its predictions over stored history, split
    into train/validation/test), else from the live futures rows. A page is kept between
    requests until the stream's next prediction is announced, at most a second
    (`services.gateway.cache`).
    """
    async def make() -> tuple[bytes, str]:
        body = await _series_body(pool, symbol, interval, paging, model_version)
        return body, etag_of(body)

    body, tag = await cache.get_or_make((symbol, interval), ("series", paging, model_version), make)
    return respond(request, body, tag)


async def _series_body(pool: asyncpg.Pool, symbol: str, interval: str, paging: queries.Paging,
                       model_version: str | None) -> bytes:
    if model_version is None:
        model = await queries.champion(pool, symbol, interval)
    else:
        model = await queries.model(pool, symbol, interval, model_version)
        if model is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model {model_version} for {symbol}")
    version = model["version"] if model else None
    test_start = model["test_start"] if model else None
    test_end = model["data_end"] if model else None
    found = await queries.series(pool, symbol, interval, version, paging, test_start, test_end)
    envelope = {
        "symbol": symbol,
        "interval": interval,
        "count": found.count,
        **paging.edges(found.count, found.first, found.last),
        "model_version": version,
        "test_start": test_start,
        "test_end": test_end,
        "hit_rate": found.hits / found.judged if found.judged else None,
    }
    return page_body(envelope, items_json=found.items_json)


@router.get("/futures", response_model=FuturePage)
async def futures(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    interval: IntervalDep,
    paging: PagingDep,
    request: Request,
) -> Response:
    """The prospective series: each prediction made live, and its real close once known."""
    rows = await queries.futures(pool, symbol, interval, paging)
    return page(request, {
        "symbol": symbol,
        "interval": interval,
        "count": len(rows),
        **paging.cursors([r["time"] for r in rows]),
        "items": [with_intervals(r) for r in rows],
    })


@router.get(
    "/predictions/latest",
    response_model=LatestPrediction,
    responses={404: {"model": Problem, "description": "no prediction yet, or symbol not served"}},
)
async def latest_prediction(
    pool: PoolDep,
    cache: CacheDep,
    symbol: SymbolDep,
    interval: IntervalDep,
) -> Response:
    """The newest prediction of the stream (kept between requests until a newer one is announced
    on Kafka, at most a second: `services.gateway.cache`)."""
    async def make() -> dict[str, Any]:
        record = await queries.latest_prediction(pool, symbol, interval)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no prediction for {symbol} {interval} yet")
        return {"symbol": symbol, "interval": interval, **with_intervals(record)}

    row = await cache.get_or_make((symbol, interval), "latest", make)
    return FastJSON({**row, "age_seconds": max(0.0, time.time() - row["predicted_at"] / 1000)})
