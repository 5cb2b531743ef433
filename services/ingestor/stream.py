"""The live part: one combined websocket for all streams (every symbol at every interval), kept
alive, never leaving a gap.

On every (re)connect the gap since the last published candle is filled over REST *after* the
socket is open, so each candle closes either before the REST call (REST has it) or after the
socket opened (the socket brings it); the publisher drops what both deliver. A closing event
that skips ahead of the next expected candle (a lost or rejected event) also triggers a REST
fill first. Lost connections are retried with exponential backoff and jitter; a connection is
renewed before Binance's 24-hour cut; a silent one (no event for `idle_timeout`) is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from services.ingestor.exchange import Exchange, Malformed, ServerShutdown, StreamKline
from services.ingestor.metrics import WS_RECONNECTS
from services.ingestor.options import IngestOptions
from services.ingestor.publisher import CandlePublisher
from shared.config import Settings, interval_ms
from shared.market.streams import Stream
from shared.messaging.events import Candle

log = logging.getLogger(__name__)

ROTATED = "rotated before the 24-hour limit"
SHUTDOWN = "the server announced its shutdown (serverShutdown)"
#: Reasons to reconnect at once, without backoff: nothing is wrong with the network.
AT_ONCE = (ROTATED, SHUTDOWN)


@dataclass(frozen=True)
class Ended:
    """The connection is over, and why."""

    reason: str


class Filler(Protocol):
    """What the live stream needs of the REST side (`services.ingestor.filler.RestFiller`)."""

    #: The streams still served (the exchange may have rejected some symbols).
    streams: list[Stream]

    async def catch_up(self, *, gap_fill: bool) -> int:
        """Every stream up to the exchange's now."""
        ...

    async def fill(self, stream: Stream, *, until: int | None = None, gap_fill: bool = False) -> int:
        """`stream`'s closed candles from the next one needed up to open time `until` (exclusive)."""
        ...


class LiveStream:
    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        exchange: Exchange,
        publisher: CandlePublisher,
        filler: Filler,
        options: IngestOptions | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.exchange = exchange
        self.publisher = publisher
        self.filler = filler
        self.options = options or IngestOptions()
        self.connections = 0

    @property
    def url(self) -> str:
        return self.exchange.stream_url(self.filler.streams)

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                async with self.session.ws_connect(
                    self.url, heartbeat=self.options.heartbeat, autoping=True
                ) as ws:
                    if self.connections:
                        WS_RECONNECTS.inc()
                    self.connections += 1
                    log.info("websocket open: %s", self.url)
                    reason = await self._session(ws, gap_fill=self.connections > 1)
                    attempt = 0
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            delay = 0.0 if reason in AT_ONCE else self.options.backoff.delay(attempt)
            attempt += 0 if reason in AT_ONCE else 1
            log.warning(
                "%s websocket: %s; reconnecting in %.1fs", self.exchange.name, reason, delay
            )
            if delay:
                await asyncio.sleep(delay)

    async def _session(self, ws: aiohttp.ClientWebSocketResponse, *, gap_fill: bool) -> str:
        """Catch up over REST, then handle events, until the connection ends; returns why it ended.

        A separate task reads the socket all along (so Binance's pings are answered even during
        a long catch-up) and queues what arrives; nothing is handled before the catch-up is done.
        Whatever has queued up is handled as one batch: many symbols closing at the same moment
        cost one round of Kafka acknowledgements, not one per symbol.
        """
        inbox: asyncio.Queue[str | Ended] = asyncio.Queue()
        reader = asyncio.create_task(self._read(ws, inbox))
        try:
            await self.filler.catch_up(gap_fill=gap_fill)
            while True:
                texts: list[str] = []
                item = await inbox.get()
                while not isinstance(item, Ended):
                    texts.append(item)
                    if inbox.empty():
                        break
                    item = inbox.get_nowait()
                if await self.handle(texts):
                    await ws.close()
                    return SHUTDOWN
                if isinstance(item, Ended):
                    return item.reason
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, inbox: asyncio.Queue[str | Ended]) -> None:
        """Queue the socket's messages until it ends, goes silent or grows too old.

        The idle limit counts from the last *data* message, not from `receive`'s own timeout:
        aiohttp restarts that timer on every ping and pong, so with a heartbeat shorter than
        `idle_timeout` a stream that stays connected but sends nothing would never be noticed.
        """
        opened = last_data = time.monotonic()
        while True:
            now = time.monotonic()
            age_left = self.options.max_connection_age - (now - opened)
            idle_left = self.options.idle_timeout - (now - last_data)
            try:
                if min(age_left, idle_left) <= 0:
                    raise TimeoutError
                async with asyncio.timeout(min(age_left, idle_left)):
                    msg = await ws.receive()
            except TimeoutError:
                rotated = time.monotonic() - opened >= self.options.max_connection_age
                await ws.close()
                inbox.put_nowait(Ended(ROTATED if rotated else f"no data for {self.options.idle_timeout:.0f}s"))
                return
            if msg.type == aiohttp.WSMsgType.TEXT:
                last_data = time.monotonic()
                inbox.put_nowait(msg.data)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                inbox.put_nowait(Ended(f"connection error ({ws.exception()})"))
                return
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                inbox.put_nowait(Ended(f"closed by the server (code {ws.close_code})"))
                return

    async def handle(self, texts: list[str]) -> bool:
        """Websocket messages, in order: publish closed candles, forward forming ones, reject bad ones.

        Returns True when the server announced its shutdown (Binance's `serverShutdown`, since
        2026-05): the candles before it are published, and the caller reconnects at once; the
        reconnect's REST catch-up fills whatever closes meanwhile.
        """
        closed: dict[Stream, list[Candle]] = {}
        shutdown = False
        for text in texts:
            message = await self._parse(text)
            if isinstance(message, ServerShutdown):
                log.warning("%s announced a shutdown of this connection (event time %s); reconnecting at once",
                            self.exchange.name, message.at_ms)
                shutdown = True
                break
            if message is None:
                continue
            if message.closed:
                closed.setdefault(Stream(message.candle.symbol, message.candle.interval), []).append(message.candle)
            elif self.settings.publish_forming_candles:
                await self.publisher.publish_forming(message.candle)
        await asyncio.gather(*(self._publish_closed(candles) for candles in closed.values()))
        return shutdown

    async def _parse(self, text: str) -> StreamKline | ServerShutdown | None:
        """A kline or the server's shutdown notice; None (after dead-lettering a bad one) otherwise."""
        message = self.exchange.parse(text, self.filler.streams)
        if isinstance(message, StreamKline | ServerShutdown):
            return message
        if isinstance(message, Malformed):
            await self.publisher.reject(source=message.source, reason=message.reason, payload=text,
                                        symbol=message.symbol)
        return None

    async def _publish_closed(self, candles: list[Candle]) -> None:
        """One stream's closed candles, oldest first; a skipped candle is fetched over REST first."""
        run: list[Candle] = []
        for candle in candles:
            stream = Stream(candle.symbol, candle.interval)
            expected = run[-1].open_time + interval_ms(stream.interval) if run else self.publisher.next_open(stream)
            if expected is not None and candle.open_time > expected:
                await self.publisher.publish(run, server_now_ms=self.exchange.now_ms())
                run = []
                log.warning("%s: events skipped from %d to %d; filling over REST", stream, expected,
                            candle.open_time)
                await self.filler.fill(stream, until=candle.open_time, gap_fill=True)
            run.append(candle)
        await self.publisher.publish(run, server_now_ms=self.exchange.now_ms())
