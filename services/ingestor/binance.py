"""Binance's REST market data as the ingestor needs it: server time and klines, retried politely.

Every request is retried until it succeeds: network failures and 5xx with exponential backoff
and jitter (one clear warning line per attempt, so an unreachable Binance is obvious in the log),
429/418 by waiting exactly as long as `Retry-After` says. Only a 4xx that retrying cannot fix
(an invalid symbol) is raised, as `BinanceError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.ingestor.metrics import REST_REFUSALS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all of base * 2^n (capped)."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class ServerClock:
    """The exchange's "now" as last observed (REST server time, websocket event time) plus the
    local time since. The stand-in's clock runs 600x faster than ours, so the ingestor never
    decides "closed or not" from its own clock."""

    def __init__(self) -> None:
        self._server_ms: int | None = None
        self._at = 0.0

    def observe(self, server_ms: int) -> None:
        self._server_ms = server_ms
        self._at = time.monotonic()

    def now_ms(self) -> int | None:
        if self._server_ms is None:
            return None
        return self._server_ms + int((time.monotonic() - self._at) * 1000)


class BinanceError(Exception):
    """Binance refused a request for a reason retrying cannot fix (e.g. -1121 Invalid symbol)."""

    def __init__(self, status: int, code: int | None, msg: str) -> None:
        super().__init__(f"HTTP {status}, code {code}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


class BinanceRest:
    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        clock: ServerClock,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def server_time(self) -> int:
        body = await self._get("/api/v3/time", {})
        server_ms = int(body["serverTime"])
        self.clock.observe(server_ms)
        return server_ms

    async def klines(
        self, symbol: str, interval: str, *, start_time: int, end_time: int | None = None, limit: int = 1000
    ) -> list[Any]:
        params = {"symbol": symbol, "interval": interval, "startTime": str(start_time), "limit": str(limit)}
        if end_time is not None:
            params["endTime"] = str(end_time)
        body = await self._get("/api/v3/klines", params)
        if not isinstance(body, list):
            raise BinanceError(200, None, f"klines answer is not a list: {str(body)[:200]}")
        return body

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        attempt = 0
        while True:
            try:
                async with self.session.get(self.base_url + path, params=params, timeout=self.timeout) as response:
                    if response.status in (418, 429):
                        wait = _retry_after(response)
                        wait = self.backoff.delay(attempt) if wait is None else wait
                        REST_REFUSALS.labels(str(response.status)).inc()
                        log.warning(
                            "Binance answered %d (rate limit) to %s; waiting %.1fs as Retry-After asks",
                            response.status, path, wait,
                        )
                        attempt += 1
                        await asyncio.sleep(wait)
                        continue
                    if response.status >= 500:
                        problem = f"HTTP {response.status}"
                    else:
                        body = await response.json(content_type=None)
                        if response.status >= 400:
                            code = body.get("code") if isinstance(body, dict) else None
                            msg = body.get("msg", "") if isinstance(body, dict) else str(body)
                            raise BinanceError(response.status, code, msg)
                        return body
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            wait = self.backoff.delay(attempt)
            attempt += 1
            log.warning(
                "Binance REST at %s cannot be reached (%s); retrying in %.1fs (attempt %d)",
                self.base_url, problem, wait, attempt,
            )
            await asyncio.sleep(wait)
