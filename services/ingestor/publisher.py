"""Publishing closed candles to `candles`: in order, once each, confirmed by every replica.

The publisher remembers the newest open time it has published per stream (symbol, interval) and
drops anything not
newer, so the overlaps that keep the stream gap-free (REST catch-up vs. websocket after a
reconnect, a restart that resumes from the topic) never become duplicates. `last` advances only
past candles Kafka has confirmed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from services.ingestor.metrics import GAP_FILLED, INGEST_LAG, PUBLISHED
from shared.config import Settings, interval_ms
from shared.market.streams import Stream
from shared.messaging import topics
from shared.messaging.events import Candle
from shared.messaging.runtime import dead_letter, send_event

log = logging.getLogger(__name__)

SERVICE = "ingestor"


class CandlePublisher:
    def __init__(self, broker: KafkaBroker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        self.topic = settings.topic(topics.CANDLES)
        self.live_topic = settings.topic(topics.CANDLES_LIVE)
        self.last: dict[Stream, int | None] = dict.fromkeys(settings.streams)

    def next_open(self, stream: Stream) -> int | None:
        """Open time of the next candle this stream needs, None before the first one."""
        last = self.last.get(stream)
        return None if last is None else last + interval_ms(stream.interval)

    async def publish(
        self, candles: Sequence[Candle], *, gap_fill: bool = False, server_now_ms: int | None = None
    ) -> int:
        """Publish the candles newer than the last published (candles of one stream, oldest first).

        Returns how many were published. `server_now_ms` (live candles only) feeds the lag metric.
        """
        if not candles:
            return 0
        symbol = candles[0].symbol
        stream = Stream(symbol, candles[0].interval)
        last = self.last.get(stream)
        fresh = [c for c in candles if last is None or c.open_time > last]
        fresh = [c for i, c in enumerate(fresh) if i == 0 or c.open_time > fresh[i - 1].open_time]
        if not fresh:
            return 0
        key = topics.symbol_key(symbol)
        # Queue them all (the producer keeps their order within the partition), then wait for acks.
        pending = [await send_event(self.broker, c, self.topic, key) for c in fresh]
        results = await asyncio.gather(*pending, return_exceptions=True)
        confirmed = 0
        for result in results:
            if isinstance(result, BaseException):
                break
            confirmed += 1
        if confirmed:
            self.last[stream] = fresh[confirmed - 1].open_time
            PUBLISHED.labels(symbol, stream.interval).inc(confirmed)
            if gap_fill:
                GAP_FILLED.inc(confirmed)
            if server_now_ms is not None:
                for candle in fresh[:confirmed]:
                    INGEST_LAG.observe(max(0.0, (server_now_ms - candle.close_time) / 1000.0))
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            raise failure
        return confirmed

    async def publish_forming(self, candle: Candle) -> None:
        """An in-progress candle, for live charts only (another topic; not waited for)."""
        await self.broker.publish(
            candle, self.live_topic, key=topics.symbol_key(candle.symbol), no_confirm=True
        )

    async def reject(self, *, source: str, reason: str, payload: str, symbol: str | None = None) -> None:
        await dead_letter(
            self.broker, self.settings, service=SERVICE, source_topic=source, reason=reason, payload=payload,
            key=symbol, kind="invalid_kline",
        )
