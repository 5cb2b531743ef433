"""The live part: combined websockets for all streams (every symbol at every interval), kept
alive, never leaving a gap.

Binance allows 1024 streams on a connection and 5 incoming messages a second on it, and a URL
naming 400 streams is already ~7,600 characters (servers refuse request lines past 8 KiB). So
the streams are split into connections of at most `MAX_STREAMS_PER_CONNECTION` (`split`); each
connection names its first `URL_STREAMS` in the URL and subscribes the rest with SUBSCRIBE
requests, paced under the message limit, and waits for every answer before it catches up over
REST.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from services.ingestor.exchange import Exchange, Malformed, ServerShutdown, StreamKline
from services.ingestor.metrics import WS_RECONNECTS
from services.ingestor.options import IngestOptions
from services.ingestor.publisher import CandlePublisher
from shared.config import Settings, interval_ms
from shared.market.rate_limits import MAX_STREAMS_PER_CONNECTION
from shared.market.streams import Stream
from shared.messaging.events import Candle

log = logging.getLogger(__name__)

#: Streams named in a connection's URL (~20 characters each); the others are subscribed by requests.
URL_STREAMS = 200
#: Seconds between two SUBSCRIBE requests: Binance allows 5 incoming messages a second, pongs included.
SUBSCRIBE_PACE = 0.5
#: Seconds to wait for the answer to a SUBSCRIBE request.
SUBSCRIBE_TIMEOUT = 10.0

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

    async def catch_up(self, *, gap_fill: bool, streams: Sequence[Stream] | None = None) -> int:
        """Every stream (or these) up to the exchange's now."""
        ...

    async def fill(self, stream: Stream, *, until: int | None = None, gap_fill: bool = False) -> int:
        """`stream`'s closed candles from the next one needed up to open time `until` (exclusive)."""
        ...


def split(streams: Sequence[Stream], size: int = MAX_STREAMS_PER_CONNECTION) -> list[list[Stream]]:
    """The streams in connections of at most `size`, as even as can be."""
    count = max(1, -(-len(streams) // size))
    return [list(streams[i::count]) for i in range(count)]


class LiveStream:
    """One connection, carrying `streams` (a part of `split`'s)."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        exchange: Exchange,
        publisher: CandlePublisher,
        filler: Filler,
        streams: Sequence[Stream],
        options: IngestOptions | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.exchange = exchange
        self.publisher = publisher
        self.filler = filler
        self.options = options or IngestOptions()
        self.own = list(streams)
        self.connections = 0
        self._answers: dict[int, asyncio.Future[str | None]] = {}

    @property
    def streams(self) -> list[Stream]:
        """This connection's streams still served (the exchange may have rejected some symbols)."""
        kept = set(self.filler.streams)
        return [s for s in self.own if s in kept]

    @property
    def url(self) -> str:
        return self.exchange.stream_url(self.streams[:URL_STREAMS])

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
            streams = self.streams
            await self._subscribe(ws, streams[URL_STREAMS:])
            await self.filler.catch_up(gap_fill=gap_fill, streams=streams)
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

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse, streams: Sequence[Stream]) -> None:
        """SUBSCRIBE requests for the streams the URL does not name, paced, each answered before
        the next (and all before the catch-up: a candle closing after it is on the socket)."""
        loop = asyncio.get_running_loop()
        for request_id, start in enumerate(range(0, len(streams), URL_STREAMS), start=1):
            if request_id > 1:
                await asyncio.sleep(SUBSCRIBE_PACE)
            answer = self._answers[request_id] = loop.create_future()
            await ws.send_str(self.exchange.subscribe_message(streams[start:start + URL_STREAMS], request_id))
            try:
                error = await asyncio.wait_for(answer, SUBSCRIBE_TIMEOUT)
            finally:
                self._answers.pop(request_id, None)
            if error is not None:
                raise aiohttp.ClientError(f"subscription refused: {error}")
        if streams:
            log.info("subscribed %d more streams on the open connection", len(streams))

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
                ack = self.exchange.ack(msg.data)
                answer = self._answers.get(ack.request_id) if ack is not None else None
                if ack is not None and answer is not None and not answer.done():
                    answer.set_result(ack.error)
                else:
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
