"""Binance, the ingestor's exchange (`services.ingestor.exchange.Exchange`): REST market data
retried politely, the combined kline websocket's URL and envelope, kline formats, the server clock.

Every request is retried until it succeeds: network failures and 5xx with exponential backoff
and jitter (one clear warning line per attempt, so an unreachable Binance is obvious in the log),
429/418 by waiting exactly as long as `Retry-After` says. Only a 4xx that retrying cannot fix
(an invalid symbol) is raised, as `BinanceError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.ingestor.exchange import (
    Ack,
    BadKline,
    ExchangeRejected,
    Ignored,
    Malformed,
    ServerShutdown,
    StreamKline,
    StreamMessage,
)
from services.ingestor.metrics import REST_REFUSALS, REST_WEIGHT_USED
from shared.market.klines import KlineError, candle_from_rest, candle_from_ws, stream_name
from shared.market.rate_limits import REQUEST_WEIGHTS, WEIGHT_HEADER, WEIGHT_LIMIT
from shared.market.streams import Stream
from shared.messaging.events import Candle

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


@dataclass
class WeightBudget:
    """Binance's request weight, kept under its limit rather than run into: every answer says the
    IP's weight used in the current minute (`X-MBX-USED-WEIGHT-1M`); a request that would take it
    past `share` of `limit` waits for the next minute. The share leaves room for other clients on
    the same IP and for requests already in flight. A 429 is still handled (waited out) if it comes."""

    limit: int = WEIGHT_LIMIT
    window: float = 60.0
    share: float = 0.8
    used: int = 0
    window_number: int = -1
    pauses: int = 0

    def observe(self, used: int, now: float) -> None:
        self.used, self.window_number = used, int(now // self.window)
        REST_WEIGHT_USED.set(used)

    def wait_before(self, cost: int, now: float) -> float:
        """Seconds to wait before a request of `cost` weight (0: go now)."""
        number = int(now // self.window)
        if number != self.window_number or self.used + cost <= self.limit * self.share:
            return 0.0
        return (number + 1) * self.window - now + 0.05


class BinanceError(ExchangeRejected):
    """Binance refused a request for a reason retrying cannot fix (e.g. -1121 Invalid symbol)."""


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
        long_wait: float = 300.0,
        budget: WeightBudget | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.budget = budget or WeightBudget()
        self.session = session
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        #: A 403 (a firewall rule hit) or a 418 without Retry-After (a ban): retrying soon only
        #: makes it worse, so the ingestor waits this long, saying so once per refusal.
        self.long_wait = long_wait

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

    async def _pace(self, path: str) -> None:
        wait = self.budget.wait_before(REQUEST_WEIGHTS.get(path, 1), time.time())
        if wait > 0:
            self.budget.pauses += 1
            log.info("request weight at %d of Binance's %d this minute: pausing %.1fs before %s",
                     self.budget.used, self.budget.limit, wait, path)
            await asyncio.sleep(wait)

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        attempt = 0
        while True:
            await self._pace(path)
            try:
                async with self.session.get(self.base_url + path, params=params, timeout=self.timeout) as response:
                    used = response.headers.get(WEIGHT_HEADER)
                    if used is not None and used.isdigit():
                        self.budget.observe(int(used), time.time())
                    if response.status in (403, 418):
                        await self._wait_out_ban(response.status, _retry_after(response), path)
                        continue
                    if response.status == 429:
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


    async def _wait_out_ban(self, status: int, retry_after: float | None, path: str) -> None:
        """403: a web application firewall rule was hit; 418: the IP is banned for ignoring 429s
        (for 2 minutes up to 3 days, Retry-After says how long). Either way a long pause, one line."""
        REST_REFUSALS.labels(str(status)).inc()
        wait = max(retry_after or 0.0, self.long_wait) if status == 403 else \
            (retry_after if retry_after is not None else self.long_wait)
        why = ("403 Forbidden: a firewall (WAF) rule refuses this client" if status == 403 else
               "418: this IP is banned for having ignored 429s")
        log.error("Binance answered %s (to %s); backing off %.0fs before the next request", why, path, wait)
        await asyncio.sleep(wait)


class Binance:
    """Binance behind the `Exchange` seam (and the local stand-in, which speaks the same formats)."""

    name = "binance"

    def __init__(self, rest_url: str, ws_url: str, session: aiohttp.ClientSession, *,
                 backoff: Backoff | None = None, long_wait: float = 300.0, budget: WeightBudget | None = None) -> None:
        self.clock = ServerClock()
        self.rest = BinanceRest(rest_url, session, clock=self.clock, backoff=backoff, long_wait=long_wait,
                                budget=budget)
        self.ws_url = ws_url.rstrip("/")

    async def server_time(self) -> int:
        return await self.rest.server_time()

    def now_ms(self) -> int | None:
        return self.clock.now_ms()

    async def klines(
        self, symbol: str, interval: str, *, start_time: int, end_time: int | None, limit: int
    ) -> Sequence[Any]:
        return await self.rest.klines(symbol, interval, start_time=start_time, end_time=end_time, limit=limit)

    def open_time(self, row: Any) -> int | None:
        try:
            return int(row[0])
        except (TypeError, ValueError, IndexError):
            return None

    def closed_rows(self, rows: Sequence[Any], server_now: int) -> list[Any]:
        """Binance's newest REST kline is still forming: it, and anything after it, is left out."""
        closed = []
        for row in rows:
            try:
                close_time = int(row[6])
            except (TypeError, ValueError, IndexError):
                closed.append(row)  # malformed: let the conversion name the problem
                continue
            if close_time >= server_now:
                break
            closed.append(row)
        return closed

    def candle(self, row: Any, symbol: str, interval: str, symbols: Sequence[str]) -> Candle:
        try:
            return candle_from_rest(row, symbol, interval, symbols=symbols)
        except KlineError as exc:
            raise BadKline(exc.reason) from None

    def stream_url(self, streams: Sequence[Stream]) -> str:
        names = "/".join(stream_name(symbol, interval) for symbol, interval in streams)
        return f"{self.ws_url}/stream?streams={names}"

    def subscribe_message(self, streams: Sequence[Stream], request_id: int) -> str:
        return json.dumps({"method": "SUBSCRIBE", "params": [stream_name(s, i) for s, i in streams], "id": request_id})

    def ack(self, text: str) -> Ack | None:
        """`{"result": null, "id": 1}`, or `{"error": {"code": 2, "msg": ...}, "id": 1}`."""
        if not text.startswith(('{"result"', '{"error"', '{"id"')):
            return None
        try:
            payload = json.loads(text)
        except ValueError:
            return None
        request_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return None
        error = payload.get("error")
        return Ack(request_id, None if error is None else str(error.get("msg", error) if isinstance(error, dict)
                                                               else error))

    def parse(self, text: str, streams: Collection[Stream]) -> StreamMessage:
        """A combined-stream message (`{"stream": ..., "data": {...}}`) or a raw kline event."""
        try:
            payload = json.loads(text)
        except ValueError:
            return Malformed("binance-ws", "not JSON")
        source = "binance-ws"
        data: Any = payload
        if isinstance(payload, dict) and "stream" in payload and "data" in payload:
            source, data = f"binance-ws:{payload['stream']}", payload["data"]
        if isinstance(data, dict) and data.get("e") == "serverShutdown":
            at = data.get("E")
            return ServerShutdown(at if isinstance(at, int) and not isinstance(at, bool) else None)
        if not isinstance(data, dict) or data.get("e") != "kline":
            return Ignored()
        event_time = data.get("E")
        if isinstance(event_time, int) and not isinstance(event_time, bool):
            self.clock.observe(event_time)
        try:
            candle, closed = candle_from_ws(data, symbols={s.symbol for s in streams})
        except KlineError as exc:
            symbol = data.get("s") if isinstance(data.get("s"), str) else None
            return Malformed(source, exc.reason, symbol)
        if Stream(candle.symbol, candle.interval) not in streams:
            served = ", ".join(sorted({s.interval for s in streams}))
            return Malformed(source, f"interval {candle.interval!r} is not subscribed (streams at {served})",
                             candle.symbol)
        return StreamKline(candle, closed)
