"""The REST filler: every closed candle into `candles` once — resume point, backfill, catch-ups.

The live stream (`services.ingestor.stream`) asks it to fill what the socket missed, through the
small `Filler` interface; `services.ingestor.main` joins the two.

"Closed" is decided from the exchange's own clock (`/api/v3/time`, asked before each page):
a kline whose close time is not yet past the server's now is still forming and is never
published, however complete it looks. The stand-in's clock runs at 600x, so the local wall
clock would be wrong by months; Binance's own clock is right for both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.ingestor.exchange import BadKline, Exchange, ExchangeRejected
from services.ingestor.options import IngestOptions
from services.ingestor.publisher import CandlePublisher
from services.ingestor.resume import resume_points
from shared.config import Settings, interval_ms
from shared.market.streams import Stream, history_start
from shared.messaging.events import Candle
from shared.storage.candle_store import mark_caught_up

log = logging.getLogger(__name__)


class RestFiller:
    """Backfill and catch-ups over REST for all configured streams (`services.ingestor.stream.Filler`)."""

    def __init__(
        self,
        settings: Settings,
        exchange: Exchange,
        publisher: CandlePublisher,
        pool: asyncpg.Pool,
        options: IngestOptions | None = None,
    ) -> None:
        self.settings = settings
        self.exchange = exchange
        self.publisher = publisher
        self.pool = pool
        self.options = options or IngestOptions()
        self.streams: list[Stream] = list(settings.streams)

    @property
    def symbols(self) -> list[str]:
        """The symbols still served (the exchange may have rejected some)."""
        return list(dict.fromkeys(s.symbol for s in self.streams))

    async def start_points(self) -> None:
        """After the newest candle known (database or topic); with none, the interval's history back
        (`Settings.history_candles_of`: 90 days of 5m, two years of 1h, all of 1d by default)."""
        points = await resume_points(self.settings, self.pool)
        missing = [s for s in self.streams if s not in points]
        if missing:
            now = await self.exchange.server_time()
            for stream in missing:
                first = history_start(stream.interval, self.settings.history_candles_of(stream.interval), now)
                points[stream] = first - interval_ms(stream.interval)
        for stream in self.streams:
            self.publisher.last[stream] = points[stream]
        log.info(
            "starting after %s",
            ", ".join(f"{s} {points[s]}{' (backfill)' if s in missing else ''}" for s in self.streams),
        )

    async def catch_up(self, *, gap_fill: bool, streams: Sequence[Stream] | None = None) -> int:
        """Every stream (or these: one connection's) up to the exchange's now; a symbol Binance
        rejects is left out, loudly."""
        total = 0
        for stream in list(self.streams if streams is None else streams):
            if stream not in self.streams:
                continue  # its symbol was rejected at another interval
            try:
                total += await self.fill(stream, gap_fill=gap_fill)
            except ExchangeRejected as exc:
                log.error("the exchange rejects %s (%s); leaving it out", stream, exc.msg)
                self.streams = [s for s in self.streams if s.symbol != stream.symbol]
        if not self.streams:
            raise RuntimeError("the exchange rejected every configured symbol")
        return total

    async def fill(self, stream: Stream, *, until: int | None = None, gap_fill: bool = False) -> int:
        """Publish `stream`'s closed candles from the next one needed up to open time `until`
        (exclusive; None: up to the server's now). Returns how many were published."""
        symbol, interval = stream
        cursor = self.publisher.next_open(stream)
        assert cursor is not None, "start_points() first"
        total = 0
        while until is None or cursor < until:
            server_now = await self.exchange.server_time()
            end = None if until is None else until - 1
            rows = await self.exchange.klines(
                symbol, interval, start_time=cursor, end_time=end, limit=self.options.page_limit
            )
            closed = self.exchange.closed_rows(rows, server_now)
            candles = await self._convert(stream, closed)
            total += await self.publisher.publish(candles, gap_fill=gap_fill)
            newest = max((t for t in (self.exchange.open_time(r) for r in closed) if t is not None), default=None)
            if newest is None or len(closed) < len(rows) or len(rows) < self.options.page_limit:
                break  # reached the forming candle, or the end of what exists
            cursor = newest + interval_ms(interval)
        if total:
            log.info("%s: published %d candle(s) over REST%s", stream, total, " (gap fill)" if gap_fill else "")
        return total

    async def _convert(self, stream: Stream, rows: Sequence[Any]) -> list[Candle]:
        symbol, interval = stream
        candles = []
        for row in rows:
            try:
                candles.append(self.exchange.candle(row, symbol, interval, self.symbols))
            except BadKline as exc:
                await self.publisher.reject(
                    source=f"{self.exchange.name}-rest:{symbol}", reason=exc.reason, payload=json.dumps(row),
                    symbol=symbol,
                )
        return candles

    async def mark_caught_up(self) -> None:
        """Record how far the backfill reached: the trainer's first model waits for it."""
        for stream in self.streams:
            last = self.publisher.last.get(stream)
            if last is not None:
                await mark_caught_up(self.pool, stream.symbol, stream.interval, last)

