"""The gateway's own Prometheus metrics: request rate and latency by route, live fan-out.

Requests are labelled by route *template* (`/models/current`, never a raw path with a query
or an id), so a scanner hitting random URLs cannot blow up the number of series: anything
that matched no route counts as `unmatched`.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "candlecast_http_requests_total",
    "HTTP requests answered by the gateway, by route template and status",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "candlecast_http_request_seconds",
    "Time from request to the end of the response, by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# With several workers (`gateway_workers`): clients add up over the live workers; connected is 1
# while any worker is.
WS_CLIENTS = Gauge("candlecast_ws_clients", "Websocket clients connected to /ws/predictions",
                   multiprocess_mode="livesum")
LIVE_MESSAGES = Counter(
    "candlecast_live_messages_total",
    "Messages read from the predictions topic, by kind (prediction, real_close, ignored)",
    ["kind"],
)
LIVE_CONNECTED = Gauge("candlecast_gateway_kafka_connected", "1 while the gateway's Kafka client is connected",
                       multiprocess_mode="livemax")


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): it neither buffers bodies nor breaks streaming."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = route_label(scope)
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)
