"""Keeping `POST /predict` from taking the gateway down: it is CPU-heavy (a model run per step),
so a flood of it would starve the cheap reads (`/health`, `/predictions/latest`).

Two limits, both answered at once with 429 and `Retry-After` rather than queued (a queue would
only move the wait into the client's timeout): predictions in flight at most
`predict_max_concurrent`, and per client a token bucket of `predict_rate_per_client` requests a
second with bursts of `predict_burst`. Buckets of clients idle for a minute are forgotten, so a
scan of many addresses cannot grow memory without bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

IDLE_SECONDS = 60.0


class TooBusy(Exception):
    """Refused: retry after `retry_after` seconds, for `reason`."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = max(1, math.ceil(retry_after))
        self.reason = reason


@dataclass
class _Bucket:
    tokens: float
    at: float


class PredictLimiter:
    def __init__(self, max_concurrent: int, rate_per_client: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_concurrent = max_concurrent
        self.rate = rate_per_client
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self.in_flight = 0

    def acquire(self, client: str) -> None:
        """Take a slot for `client`, or raise `TooBusy`; pair with `release()`."""
        now = self._clock()
        self._forget_idle(now)
        bucket = self._buckets.setdefault(client, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            raise TooBusy((1.0 - bucket.tokens) / self.rate, f"more than {self.rate:g} predictions a second "
                                                               f"from {client}")
        if self.in_flight >= self.max_concurrent:
            raise TooBusy(1.0, f"{self.max_concurrent} predictions already running")
        bucket.tokens -= 1.0
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) > 1000:
            self._buckets = {k: b for k, b in self._buckets.items() if now - b.at < IDLE_SECONDS}
