"""`BinanceSim`: the whole stand-in as one object, started in-process by tests or by `candlecast sim`.

    market = Market.generated(["BTCUSDT"], "5m", days=30, regime=RegimeChange(at_ms=...))
    async with BinanceSim(market, speed=600) as sim:
        settings = settings.model_copy(update={"binance_rest_url": sim.rest_url,
                                               "binance_ws_url": sim.ws_url})
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from aiohttp import web

from services.sim.admin import HUB, STREAMS, TICKERS
from services.sim.admin import add_routes as add_admin_routes
from services.sim.clock import SimClock
from services.sim.faults import Faults
from services.sim.market import Market
from services.sim.rest import CLOCK, FAULTS, MARKET
from services.sim.rest import add_routes as add_rest_routes
from services.sim.streams import Hub, StreamEndpoints, Ticker
from services.sim.weights import RequestWeights, weight_middleware
from shared.market.rate_limits import WEIGHT_LIMIT

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
# The default "now": far enough into the data for the ingestor's default 90-day backfill.
DEFAULT_LEAD_DAYS = 91


def default_start(market: Market) -> int:
    """91 days into the data, or, for shorter data, three quarters of the way through it."""
    lead = market.start_ms + DEFAULT_LEAD_DAYS * DAY_MS
    if lead < market.end_ms:
        return lead
    return market.start_ms + (market.end_ms - market.start_ms) * 3 // 4


class BinanceSim:
    """Binance's kline REST and websocket API over `market`, on a clock running at `speed`.

    `updates` is the number of in-progress (`x` false) events per candle before its closing one;
    `port=0` picks a free port (see `port`, `rest_url`, `ws_url` after `start()`).
    """

    def __init__(
        self,
        market: Market,
        *,
        speed: float = 600.0,
        start_ms: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        updates: int = 2,
        ping_interval: float = 20.0,
        max_connection_age: float = 24 * 3600.0,
        pong_timeout: float = 60.0,
        max_incoming: int = 5,
        weight_limit: int = WEIGHT_LIMIT,
        weight_window: float = 60.0,
    ) -> None:
        self.market = market
        self.host = host
        self.port = port
        self.clock = SimClock(start_ms if start_ms is not None else default_start(market), speed, market.end_ms)
        self.faults = Faults()
        self.weights = RequestWeights(weight_limit, weight_window)
        self.hub = Hub()
        # One ticker per interval; each sends only while some connection listens at its interval.
        self.tickers = [Ticker(market, self.clock, self.hub, self.faults, updates, interval)
                        for interval in market.intervals]
        self.streams = StreamEndpoints(market, self.hub, self.clock, ping_interval=ping_interval,
                                       max_age=max_connection_age, pong_timeout=pong_timeout,
                                       max_incoming=max_incoming)
        self._runner: web.AppRunner | None = None
        self._ticker_tasks: list[asyncio.Task[None]] = []

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[weight_middleware(self.weights)])
        app[MARKET] = self.market
        app[CLOCK] = self.clock
        app[FAULTS] = self.faults
        app[HUB] = self.hub
        app[TICKERS] = self.tickers
        add_rest_routes(app)
        add_admin_routes(app)
        app[STREAMS] = self.streams
        app.router.add_get("/ws/{streams:.+}", self.streams.raw)
        app.router.add_get("/stream", self.streams.combined)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build_app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._ticker_tasks = [asyncio.create_task(t.run(), name=f"sim-ticker-{t.interval}") for t in self.tickers]
        log.info(
            "Binance stand-in on %s: %s at %s, now %d, speed %gx",
            self.rest_url, ",".join(self.market.symbols), ",".join(self.market.intervals), self.clock.now_ms(),
            self.clock.speed,
        )

    async def stop(self) -> None:
        for task in self._ticker_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ticker_tasks = []
        self.hub.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BinanceSim:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # The same controls as the /_sim/ API, for tests that hold the object.

    def drop_connections(self) -> int:
        return self.hub.drop_all()

    def freeze(self, seconds: float) -> int:
        """Every open websocket goes quiet for `seconds` (left open): returns how many."""
        return self.hub.freeze_all(seconds)

    def server_shutdown(self) -> int:
        """Binance's `serverShutdown` notice to every connection, then a close: returns how many."""
        return self.hub.shutdown_all(self.clock.now_ms())

    def rate_limit(self, count: int, *, retry_after: int = 1, status: int = 429) -> None:
        self.faults.rate_limited, self.faults.retry_after, self.faults.status = count, retry_after, status

    def inject_malformed(self, kind: str = "high_low", count: int = 1) -> None:
        self.faults.add_malformed(kind, count)
