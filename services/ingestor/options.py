"""The ingestor's timings: the defaults suit Binance; tests shorten them."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.ingestor.binance import Backoff
from shared.market.rate_limits import WEIGHT_LIMIT


@dataclass(frozen=True)
class IngestOptions:
    backoff: Backoff = field(default_factory=Backoff)
    page_limit: int = 1000
    idle_timeout: float = 60.0  # no websocket message for this long: the connection is dead
    max_connection_age: float = 23.5 * 3600  # reconnect before Binance cuts at 24 h
    heartbeat: float = 20.0  # our pings (Binance pongs them) notice a silently dead TCP connection
    long_backoff: float = 300.0  # after a 403 (firewall) or a 418 without Retry-After (ban)
    weight_limit: int = WEIGHT_LIMIT  # Binance's request weight per IP a minute; the backfill stays under 80% of it
    weight_window: float = 60.0
