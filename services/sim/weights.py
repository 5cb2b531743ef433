"""Binance's request weight: each REST call costs weight, counted per IP in the current minute;
every answer says the total in `X-MBX-USED-WEIGHT-1M`, and a call past the limit (6,000 a
minute) is refused with 429 and `Retry-After` up to the next minute. A client that reads the
header can stay under the limit; one that ignores 429s gets banned (418) on the real thing.

The window is wall-clock time (limits are about the servers' load, not the replayed market), a
minute by default; tests shorten it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from shared.market.rate_limits import REQUEST_WEIGHTS, WEIGHT_HEADER, WEIGHT_LIMIT


@dataclass
class RequestWeights:
    limit: int = WEIGHT_LIMIT
    window: float = 60.0
    refused: int = 0
    _used: dict[str, tuple[int, int]] = field(default_factory=dict)  # ip -> (window number, weight used)

    def charge(self, ip: str, cost: int, now: float | None = None) -> tuple[int, float | None]:
        """Count `cost` for `ip`: (weight used in this window, seconds to wait if refused, else None)."""
        now = time.time() if now is None else now
        number = int(now // self.window)
        seen, used = self._used.get(ip, (number, 0))
        used = (used if seen == number else 0) + cost
        self._used[ip] = (number, used)
        if used > self.limit:
            self.refused += 1
            return used, (number + 1) * self.window - now
        return used, None


def weight_middleware(weights: RequestWeights) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        cost = REQUEST_WEIGHTS.get(request.path)
        if cost is None:
            return await handler(request)
        ip = request.remote or "127.0.0.1"
        used, wait = weights.charge(ip, cost)
        if wait is not None:
            response: web.StreamResponse = web.json_response(
                {"code": -1003, "msg": f"Too much request weight used; current limit of IP({ip}) is "
                                       f"{weights.limit} requests per minute. Please use WebSocket Streams for live "
                                       "updates to avoid polling the API."}, status=429)
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        else:
            response = await handler(request)
        response.headers[WEIGHT_HEADER] = str(used)
        return response

    return middleware
