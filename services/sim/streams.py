"""Binance's market-data websocket for klines: `/ws/<stream>` and `/stream?streams=<s1>/<s2>`.

One task per interval (`Ticker`) walks the clock through each candle: `updates` in-progress
events (`x` false, values so far) and then the closing one (`x` true, equal to the REST kline),
for every symbol at once, and hands them to the connections subscribed to that (symbol,
interval): one connection may carry 5m and 1d streams together, as on Binance. Each connection has
its own queue and writer, so a slow client cannot stall the others; one that falls too far
behind is disconnected, as Binance does.

Binance's 2026 rules, enforced (`../shared/reference/binance.md`): the server pings every
`ping_interval` (20 s) with a payload, and drops a client whose pong does not echo it within
`pong_timeout` (60 s; an unsolicited pong does not count); a client sending more than
`max_incoming` (5) messages a second (pings, pongs and requests count) is disconnected; and on
command every connection gets a `serverShutdown` event before the server closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from services.sim.clock import SimClock
from services.sim.faults import Faults, corrupt
from services.sim.market import Market
from shared.config import interval_ms
from shared.market.klines import align_down, candle_to_ws, stream_name
from shared.market.rate_limits import MAX_STREAMS_PER_CONNECTION

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000


@dataclass(frozen=True)
class Close:
    """Queued after the last message a connection gets: the writer closes with this code."""

    code: int
    reason: str


@dataclass(eq=False)
class Connection:
    """One client websocket and the streams it listens to (stream name by (symbol, interval))."""

    ws: web.WebSocketResponse
    request: web.Request
    streams: dict[tuple[str, str], str]
    combined: bool
    queue: asyncio.Queue[str | Close | None] = field(default_factory=asyncio.Queue)
    opened_at: float = field(default_factory=time.monotonic)
    #: Ping payloads not yet echoed, with the monotonic time by which the pong must arrive.
    pings: dict[bytes, float] = field(default_factory=dict)
    #: Monotonic times of the client's messages in the last second.
    incoming: deque[float] = field(default_factory=deque)
    #: Until this monotonic time the path is frozen: nothing is sent, pinged or answered.
    frozen_until: float = 0.0

    def frozen_for(self) -> float:
        return max(0.0, self.frozen_until - time.monotonic())

    def received(self, limit: int) -> bool:
        """Count one incoming message; False once more than `limit` came within a second."""
        now = time.monotonic()
        self.incoming.append(now)
        while self.incoming and self.incoming[0] < now - 1.0:
            self.incoming.popleft()
        return len(self.incoming) <= limit

    def offer(self, stream: tuple[str, str], payload: dict[str, Any] | str) -> None:
        """Queue one event; a client this far behind is cut off rather than buffered forever."""
        name = self.streams.get(stream)
        if name is None:
            return
        if isinstance(payload, str):
            text = payload
        elif self.combined:
            text = json.dumps({"stream": name, "data": payload}, separators=(",", ":"))
        else:
            text = json.dumps(payload, separators=(",", ":"))
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.abort()
            return
        self.queue.put_nowait(text)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, like a network failure."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.queue.put_nowait(None)


class Hub:
    """The open connections."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.total_connections = 0

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.total_connections += 1

    def discard(self, conn: Connection) -> None:
        self.connections.discard(conn)

    def send(self, stream: tuple[str, str], payload: dict[str, Any] | str) -> None:
        for conn in list(self.connections):
            conn.offer(stream, payload)

    def listens(self, interval: str) -> bool:
        """Whether any connection is subscribed to some symbol at `interval`."""
        return any(ivl == interval for conn in self.connections for _, ivl in conn.streams)

    def drop_all(self) -> int:
        dropped = list(self.connections)
        for conn in dropped:
            conn.abort()
        return len(dropped)

    def freeze_all(self, seconds: float) -> int:
        """A network path that goes quiet without closing: the open connections get nothing (no
        event, no ping, no pong) for `seconds`; what was queued meanwhile follows afterwards, as a
        stalled TCP path delivers it, if the client is still there."""
        frozen = list(self.connections)
        for conn in frozen:
            conn.frozen_until = time.monotonic() + seconds
        return len(frozen)

    def shutdown_all(self, now_ms: int) -> int:
        """Binance's maintenance notice: `{"e": "serverShutdown", "E": now}`, then a close (1001)."""
        notice = json.dumps({"e": "serverShutdown", "E": now_ms}, separators=(",", ":"))
        told = list(self.connections)
        for conn in told:
            conn.queue.put_nowait(notice)
            conn.queue.put_nowait(Close(1001, "server shutdown"))
        return len(told)


class Ticker:
    """Emits each `interval` candle's in-progress updates and its closing event as the clock passes them."""

    def __init__(
        self, market: Market, clock: SimClock, hub: Hub, faults: Faults, updates: int, interval: str | None = None
    ) -> None:
        self.market = market
        self.clock = clock
        self.hub = hub
        self.faults = faults
        self.updates = max(0, updates)
        self.interval = interval or market.interval
        self.interval_ms = interval_ms(self.interval)
        self.events_sent = 0

    def _point(self, open_ms: int, k: int) -> int:
        """The k-th emission time inside the candle opening at `open_ms`; k = updates + 1 closes it."""
        return open_ms + (k * self.interval_ms) // (self.updates + 1)

    def _after(self, now: int) -> tuple[int, int]:
        """The first emission point strictly after `now`."""
        open_ms = align_down(now, self.interval_ms)
        for k in range(1, self.updates + 2):
            if self._point(open_ms, k) > now:
                return open_ms, k
        return open_ms + self.interval_ms, 1

    async def run(self) -> None:
        open_ms, k = self._after(self.clock.now_ms())
        while True:
            point = self._point(open_ms, k)
            await self.clock.sleep_until(point)
            closing = k == self.updates + 1
            now = self.clock.now_ms()
            # Behind schedule (a busy machine, a jump of the clock): closes are never skipped,
            # stale in-progress updates are.
            stale = not closing and now >= self._point(open_ms, k + 1)
            if not stale:
                self._emit(open_ms, point, closing)
            if now > point + 10 * self.interval_ms:
                open_ms, k = self._after(now)  # the clock jumped far ahead: resume from here
            elif closing:
                open_ms, k = open_ms + self.interval_ms, 1
            else:
                k += 1

    def _emit(self, open_ms: int, event_time: int, closing: bool) -> None:
        if not self.hub.listens(self.interval):
            return
        for symbol in self.market.symbols:
            series = self.market.at(symbol, self.interval)
            i = None if series is None else series.index_of(open_ms)
            if series is None or i is None:
                continue
            candle = series.candle(i) if closing else series.forming(i, event_time)
            event = candle_to_ws(candle, closed=closing, event_time=event_time)
            stream = (symbol, self.interval)
            if closing:
                while self.faults.malformed:
                    self.hub.send(stream, corrupt(event, self.faults.malformed.popleft(), self.interval_ms))
            self.hub.send(stream, event)
            self.events_sent += 1


def _parse_streams(names: list[str], market: Market) -> dict[tuple[str, str], str] | str:
    """(symbol, interval) -> stream name for `<symbol>@kline_<interval>` names, or an error message."""
    streams: dict[tuple[str, str], str] = {}
    for name in names:
        symbol, _, kind = name.partition("@")
        interval = kind.removeprefix("kline_")
        if (not kind.startswith("kline_") or symbol.upper() not in market.series or interval not in market.intervals
                or name != stream_name(symbol, interval)):
            served = ", ".join(market.symbols)
            return (f"Invalid stream name {name!r}; this stand-in serves {served} at "
                    f"{', '.join(market.intervals)}")
        streams[(symbol.upper(), interval)] = name
    return streams if streams else "no stream given"


class StreamEndpoints:
    """The aiohttp handlers; `max_age` (seconds) mirrors Binance's 24-hour connection limit."""

    def __init__(self, market: Market, hub: Hub, clock: SimClock, *, ping_interval: float, max_age: float,
                 pong_timeout: float = 60.0, max_incoming: int = 5) -> None:
        self.market = market
        self.hub = hub
        self.clock = clock
        self.ping_interval = ping_interval
        self.max_age = max_age
        self.pong_timeout = pong_timeout
        self.max_incoming = max_incoming
        self.dropped_for_pong = 0
        self.dropped_for_flood = 0

    async def raw(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, request.match_info["streams"].split("/"), combined=False)

    async def combined(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, request.query.get("streams", "").split("/"), combined=True)

    async def _serve(self, request: web.Request, names: list[str], *, combined: bool) -> web.StreamResponse:
        streams = _parse_streams([n for n in names if n], self.market)
        if isinstance(streams, str):
            return web.json_response({"code": -1121, "msg": streams}, status=400)
        if len(streams) > MAX_STREAMS_PER_CONNECTION:
            limit = MAX_STREAMS_PER_CONNECTION
            return web.json_response({"code": -1121, "msg": f"{len(streams)} streams: at most {limit} on one "
                                                             "connection"}, status=400)
        ws = web.WebSocketResponse(autoping=False)  # pings and pongs handled here, as Binance does
        conn = Connection(ws, request, streams, combined)
        self.hub.add(conn)  # before the handshake completes, so no event falls between
        try:
            await ws.prepare(request)
            writer = asyncio.create_task(self._write(conn))
            pinger = asyncio.create_task(self._ping(conn))
            try:
                async for msg in ws:
                    if not conn.received(self.max_incoming):
                        self.dropped_for_flood += 1
                        log.info("closing a websocket: more than %d messages in a second", self.max_incoming)
                        await ws.close(code=1008, message=b"Too many requests")
                        break
                    if msg.type == WSMsgType.PING:
                        if not conn.frozen_for():
                            await ws.pong(msg.data)
                    elif msg.type == WSMsgType.PONG:
                        conn.pings.pop(bytes(msg.data), None)  # only an echo of our payload counts
                    elif msg.type == WSMsgType.TEXT:
                        await self._control(conn, msg.data)
            finally:
                for task in (writer, pinger):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            self.hub.discard(conn)
        return ws

    async def _ping(self, conn: Connection) -> None:
        """A ping with a payload every `ping_interval`; a pong overdue by `pong_timeout` drops the client."""
        next_ping = time.monotonic() + self.ping_interval
        sent = 0
        while True:
            await asyncio.sleep(min(self.ping_interval, self.pong_timeout) / 4)
            if frozen := conn.frozen_for():  # a frozen path: no ping leaves, and no pong is due
                await asyncio.sleep(frozen)
                conn.pings.clear()
                continue
            now = time.monotonic()
            if any(deadline < now for deadline in conn.pings.values()):
                self.dropped_for_pong += 1
                log.info("dropping a websocket whose pong is over %.0fs late", self.pong_timeout)
                conn.abort()
                return
            if now >= next_ping:
                sent += 1
                payload = f"{self.clock.now_ms()}-{sent}".encode()  # unique: each ping has its own deadline
                conn.pings[payload] = now + self.pong_timeout
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.ping(payload)
                next_ping = now + self.ping_interval

    async def _write(self, conn: Connection) -> None:
        deadline = conn.opened_at + self.max_age
        while True:
            try:
                text = await asyncio.wait_for(conn.queue.get(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.info("closing a websocket at its maximum age of %.0fs", self.max_age)
                await conn.ws.close(code=1000, message=b"maximum connection age reached")
                return
            if text is None:
                return
            if isinstance(text, Close):
                await conn.ws.close(code=text.code, message=text.reason.encode())
                return
            if frozen := conn.frozen_for():
                await asyncio.sleep(frozen)
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def _control(self, conn: Connection, text: str) -> None:
        """Binance's requests on the socket: SUBSCRIBE and UNSUBSCRIBE (`params`: stream names),
        LIST_SUBSCRIPTIONS; answered `{"result": ..., "id": ...}` or `{"error": {...}, "id": ...}`."""
        try:
            request = json.loads(text)
            method, params, request_id = request.get("method"), request.get("params", []), request.get("id")
        except (ValueError, AttributeError):
            await conn.ws.send_json({"error": {"code": 3, "msg": "Invalid JSON"}})
            return
        result: Any = None
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            named = _parse_streams(params if isinstance(params, list) else [], self.market)
            if isinstance(named, str):
                await conn.ws.send_json({"error": {"code": 2, "msg": named}, "id": request_id})
                return
            if method == "UNSUBSCRIBE":
                for stream in named:
                    conn.streams.pop(stream, None)
            elif len(conn.streams.keys() | named.keys()) > MAX_STREAMS_PER_CONNECTION:
                limit = MAX_STREAMS_PER_CONNECTION
                await conn.ws.send_json({"error": {"code": 2, "msg": f"at most {limit} streams on one connection"},
                                         "id": request_id})
                return
            else:
                conn.streams.update(named)
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(conn.streams.values())
        await conn.ws.send_json({"result": result, "id": request_id})
