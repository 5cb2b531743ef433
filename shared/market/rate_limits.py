"""Binance's limits: the REST request weight (what each call costs and how much an IP may spend a
minute), and the streams one websocket connection may carry.

The ingestor paces itself by these and the stand-in enforces them, from this one place, so the
two sides cannot drift apart (as `shared.market.klines` does for the kline formats).
"""

from __future__ import annotations

#: Weight of each endpoint used, as Binance's API documentation gives it (klines: 2 for any limit).
REQUEST_WEIGHTS = {"/api/v3/klines": 2, "/api/v3/time": 1, "/api/v3/ping": 1}
#: Every answer's header: the IP's weight used in the current minute.
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
#: Weight an IP may use a minute; past it, 429 with Retry-After (and 418, a ban, if ignored).
WEIGHT_LIMIT = 6000
#: Streams one websocket connection may carry (named in its URL and subscribed by requests together).
MAX_STREAMS_PER_CONNECTION = 1024
