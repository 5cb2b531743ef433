"""Binance Spot's public REST market data, as far as the ingestor uses it: klines, time, ping.

Errors look like Binance's (`{"code": -1121, "msg": "Invalid symbol."}` with HTTP 400), and a
refusal for rate limiting is a 429 (or 418) with `Retry-After`, so the client code that handles
them is the code that will meet the real thing.
"""

from __future__ import annotations

import re

from aiohttp import web

from services.sim.clock import SimClock
from services.sim.faults import Faults
from services.sim.market import Market
from shared.config import INTERVAL_MS
from shared.market.klines import candle_to_rest

MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
# Binance accepts these; the stand-in serves those its data can be aggregated to (`Market.intervals`).
BINANCE_INTERVALS = (*INTERVAL_MS, "3d", "1w", "1M")
_SYMBOL_RULE = re.compile(r"^[A-Z0-9-_.]{1,20}$")

MARKET: web.AppKey[Market] = web.AppKey("market", Market)
CLOCK: web.AppKey[SimClock] = web.AppKey("clock", SimClock)
FAULTS: web.AppKey[Faults] = web.AppKey("faults", Faults)


def binance_error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _mandatory(name: str) -> web.Response:
    return binance_error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _rate_limited(faults: Faults, request: web.Request) -> web.Response | None:
    refusal = faults.take_rate_limit()
    if refusal is None:
        return None
    status, retry_after = refusal
    if status == 403:  # Binance's web application firewall: not JSON, no Retry-After
        return web.Response(status=403, text="<html><body><h1>403 Forbidden</h1></body></html>",
                            content_type="text/html")
    ip = request.remote or "127.0.0.1"
    if status == 418:
        msg = f"Way too much request weight used; IP({ip}) banned. Please use WebSocket Streams for live updates."
    else:
        msg = (
            f"Too much request weight used; current limit of IP({ip}) is 6000 requests per minute. "
            "Please use WebSocket Streams for live updates to avoid polling the API."
        )
    response = binance_error(-1003, msg, status=status)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _optional_int(request: web.Request, name: str) -> int | web.Response | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return binance_error(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        )


async def klines(request: web.Request) -> web.Response:
    """`GET /api/v3/klines`: candles with open time up to the clock's now; the last may be forming."""
    app = request.app
    refused = _rate_limited(app[FAULTS], request)
    if refused is not None:
        return refused
    market, clock = app[MARKET], app[CLOCK]
    symbol = request.query.get("symbol", "")
    interval = request.query.get("interval", "")
    if not symbol:
        return _mandatory("symbol")
    if not interval:
        return _mandatory("interval")
    if not _SYMBOL_RULE.match(symbol):
        return binance_error(
            -1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."
        )
    if interval not in BINANCE_INTERVALS:
        return binance_error(-1120, "Invalid interval.")
    if symbol not in market.series:
        return binance_error(-1121, "Invalid symbol.")
    series = market.at(symbol, interval)
    if series is None:
        return binance_error(-1120, f"Invalid interval. (this stand-in serves {', '.join(market.intervals)})")
    params: dict[str, int | None] = {}
    for name in ("startTime", "endTime", "limit"):
        value = _optional_int(request, name)
        if isinstance(value, web.Response):
            return value
        params[name] = value
    limit = DEFAULT_LIMIT if params["limit"] is None else params["limit"]
    if not 1 <= limit <= MAX_LIMIT:
        return binance_error(-1130, "Data sent for parameter 'limit' is not valid.")
    start, end = params["startTime"], params["endTime"]
    if start is not None and end is not None and start > end:
        return binance_error(-1023, "Start time is greater than end time.")

    now = clock.now_ms()
    hi = now if end is None else min(end, now)
    i, j = series.window(start if start is not None else int(series.open_times[0]), hi)
    # With a start, Binance counts `limit` forward from it; without one, back from the end.
    i, j = (i, min(j, i + limit)) if start is not None else (max(i, j - limit), j)
    rows = []
    for row in range(i, j):
        candle = series.candle(row)
        if candle.close_time >= now:
            candle = series.forming(row, now)
        rows.append(candle_to_rest(candle))
    return web.json_response(rows)  # the weight header: `weights.weight_middleware`


async def server_time(request: web.Request) -> web.Response:
    refused = _rate_limited(request.app[FAULTS], request)
    if refused is not None:
        return refused
    return web.json_response({"serverTime": request.app[CLOCK].now_ms()})


async def ping(request: web.Request) -> web.Response:
    return web.json_response({})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v3/klines", klines)
    app.router.add_get("/api/v3/time", server_time)
    app.router.add_get("/api/v3/ping", ping)
