"""The seam between the ingestor and an exchange: what the REST filler and the live stream need.

Everything exchange-specific (URLs, stream names, the websocket envelope, kline formats, error
codes, the server clock) sits behind `Exchange`; `services.ingestor.binance` is the one
implementation. A second exchange is one new module implementing this protocol, chosen in
`services.ingestor.main`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.market.streams import Stream
from shared.messaging.events import Candle


class ExchangeRejected(Exception):
    """The exchange refused a request for a reason retrying cannot fix (e.g. an unknown symbol)."""

    def __init__(self, status: int, code: int | None, msg: str) -> None:
        super().__init__(f"HTTP {status}, code {code}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg


class BadKline(ValueError):
    """A kline that breaks a rule; `reason` names the field and the rule (for the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StreamKline:
    """A kline event from the live stream: the candle so far, and whether this event closes it."""

    candle: Candle
    closed: bool


@dataclass(frozen=True)
class Ignored:
    """A stream message that is not a kline (a subscription answer, another event type)."""


@dataclass(frozen=True)
class Malformed:
    """A stream message that should have been a kline and is not one: dead-lettered with `reason`."""

    source: str
    reason: str
    symbol: str | None = None


@dataclass(frozen=True)
class ServerShutdown:
    """The exchange says it is about to close this connection (maintenance): reconnect at once."""

    at_ms: int | None = None


@dataclass(frozen=True)
class Ack:
    """The answer to a request sent on the socket (a subscription): its id, and the error if refused."""

    request_id: int
    error: str | None = None


StreamMessage = StreamKline | Ignored | Malformed | ServerShutdown


class Exchange(Protocol):
    """An exchange's market data, as the ingestor needs it."""

    #: Names the exchange in logs and in dead letters' sources ("binance-rest:BTCUSDT").
    name: str

    async def server_time(self) -> int:
        """The exchange's now (epoch ms); also observed by `now_ms`."""
        ...

    def now_ms(self) -> int | None:
        """The exchange's now as last observed plus the local time since (None before any)."""
        ...

    async def klines(
        self, symbol: str, interval: str, *, start_time: int, end_time: int | None, limit: int
    ) -> Sequence[Any]:
        """Raw klines from `start_time`, oldest first, the newest possibly still forming."""
        ...

    def open_time(self, row: Any) -> int | None:
        """A raw kline's open time (None when unreadable)."""
        ...

    def closed_rows(self, rows: Sequence[Any], server_now: int) -> list[Any]:
        """The rows before the first one still forming at `server_now`."""
        ...

    def candle(self, row: Any, symbol: str, interval: str, symbols: Sequence[str]) -> Candle:
        """A raw kline as a `Candle`; `BadKline` naming the rule it breaks."""
        ...

    def stream_url(self, streams: Sequence[Stream]) -> str:
        """One websocket URL carrying these streams' klines (each symbol at each interval)."""
        ...

    def subscribe_message(self, streams: Sequence[Stream], request_id: int) -> str:
        """A request, sent on an open socket, for these streams' klines too."""
        ...

    def ack(self, text: str) -> Ack | None:
        """The answer to a request, if `text` is one (cheap for every other message)."""
        ...

    def parse(self, text: str, streams: Collection[Stream]) -> StreamMessage:
        """One websocket message; a kline of a stream not in `streams` is `Malformed`."""
        ...
