"""The stand-in's control API under `/_sim/` (not Binance's): what tests use to cause trouble.

    GET  /_sim/clock                          now, speed, data range, symbols
    POST /_sim/clock?speed=S&now=MS           change speed and/or jump
    POST /_sim/drop-connections               cut every websocket (no close frame)
    POST /_sim/server-shutdown                `serverShutdown` to every websocket, then a close
    POST /_sim/freeze?seconds=S               every open websocket goes quiet for S s, left open
    POST /_sim/rate-limit?...&status=403      a firewall refusal (403) instead of 429/418
    POST /_sim/rate-limit?count=N&retry_after=S&status=429|418
    POST /_sim/malformed?count=N&kind=high_low|nan|negative_volume|unknown_symbol|misaligned|not_json
    GET  /_sim/stats                          connections, events, refusals
"""

from __future__ import annotations

from aiohttp import web

from services.sim.faults import MALFORMED_KINDS
from services.sim.rest import CLOCK, FAULTS, MARKET
from services.sim.streams import Hub, StreamEndpoints, Ticker

HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
TICKERS: web.AppKey[list[Ticker]] = web.AppKey("tickers", list)
STREAMS: web.AppKey[StreamEndpoints] = web.AppKey("streams", StreamEndpoints)


def _error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be an integer"}}', content_type="application/json"
        ) from None


async def get_clock(request: web.Request) -> web.Response:
    app = request.app
    market, clock = app[MARKET], app[CLOCK]
    return web.json_response(
        {
            "now": clock.now_ms(),
            "speed": clock.speed,
            "interval": market.interval,
            "intervals": market.intervals,
            "symbols": market.symbols,
            "data_start": market.start_ms,
            "data_end": market.end_ms,
        }
    )


async def set_clock(request: web.Request) -> web.Response:
    clock = request.app[CLOCK]
    speed_raw = request.query.get("speed")
    try:
        speed = float(speed_raw) if speed_raw is not None else None
    except ValueError:
        return _error("speed must be a number")
    if speed is not None and speed < 0:
        return _error("speed must not be negative")
    now = request.query.get("now")
    clock.set(now_ms=_int_param(request, "now", 0) if now is not None else None, speed=speed)
    return await get_clock(request)


async def drop_connections(request: web.Request) -> web.Response:
    return web.json_response({"dropped": request.app[HUB].drop_all()})


async def server_shutdown(request: web.Request) -> web.Response:
    return web.json_response({"notified": request.app[HUB].shutdown_all(request.app[CLOCK].now_ms())})


async def freeze(request: web.Request) -> web.Response:
    try:
        seconds = float(request.query.get("seconds", "30"))
    except ValueError:
        return _error("seconds must be a number")
    if not 0 < seconds <= 3600:
        return _error("seconds must be above 0 and at most 3600")
    return web.json_response({"frozen": request.app[HUB].freeze_all(seconds), "seconds": seconds})


async def rate_limit(request: web.Request) -> web.Response:
    faults = request.app[FAULTS]
    count = _int_param(request, "count", 1)
    status = _int_param(request, "status", 429)
    if status not in (403, 418, 429):
        return _error("status must be 429, 418 or 403")
    if count < 0:
        return _error("count must not be negative")
    faults.rate_limited = count
    faults.retry_after = max(0, _int_param(request, "retry_after", 1))
    faults.status = status
    return web.json_response({"rate_limited": count, "retry_after": faults.retry_after, "status": status})


async def malformed(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "high_low")
    if kind not in MALFORMED_KINDS:
        return _error(f"kind must be one of {', '.join(MALFORMED_KINDS)}")
    count = _int_param(request, "count", 1)
    if count < 1:
        return _error("count must be positive")
    request.app[FAULTS].add_malformed(kind, count)
    return web.json_response({"queued": len(request.app[FAULTS].malformed), "kind": kind})


async def stats(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response(
        {
            "connections": len(app[HUB].connections),
            "total_connections": app[HUB].total_connections,
            "events_sent": sum(t.events_sent for t in app[TICKERS]),
            "rate_limits_served": app[FAULTS].served_rate_limits,
            "dropped_for_pong": app[STREAMS].dropped_for_pong,
            "dropped_for_flood": app[STREAMS].dropped_for_flood,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/clock", get_clock)
    app.router.add_post("/_sim/clock", set_clock)
    app.router.add_post("/_sim/drop-connections", drop_connections)
    app.router.add_post("/_sim/server-shutdown", server_shutdown)
    app.router.add_post("/_sim/freeze", freeze)
    app.router.add_post("/_sim/rate-limit", rate_limit)
    app.router.add_post("/_sim/malformed", malformed)
    app.router.add_get("/_sim/stats", stats)
