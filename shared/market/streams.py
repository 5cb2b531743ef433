"""A stream is one (symbol, interval): its own candles, champion, futures, drift and retraining.

How much history a stream keeps and learns from is counted in candles, because days mean very
different amounts of data per interval: 90 days are 25,920 candles of 5m but 90 of 1d, too few
to train on. The defaults (`default_history`):

* shorter than 1h: 90 days (25,920 candles of 5m; what the 5m model was tuned on);
* 1h up to (not including) 1d: two years (17,520 candles of 1h);
* 1d and longer: everything the exchange has (BTCUSDT daily since 2017-08-17: ~3,000 candles).
"""

from __future__ import annotations

from typing import NamedTuple

from shared.market.intervals import INTERVAL_MS, interval_ms

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# Binance opened in July 2017; a backfill of "everything" asks from here and gets the first candle.
EXCHANGE_START_MS = 1_498_867_200_000  # 2017-07-01 00:00 UTC


class Stream(NamedTuple):
    symbol: str
    interval: str

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval}"


def default_history(interval: str) -> int | None:
    """Candles of history for `interval` by default; None means everything the exchange has."""
    step = interval_ms(interval)
    if step >= DAY_MS:
        return None
    days = 90 if step < HOUR_MS else 730
    return days * DAY_MS // step


def history_start(interval: str, candles: int | None, now_ms: int) -> int:
    """Open time of the first candle of a history of `candles` ending at `now_ms` (None: everything)."""
    step = interval_ms(interval)
    if candles is None:
        return EXCHANGE_START_MS // step * step
    return max(0, (now_ms // step - candles) * step)


__all__ = ["DAY_MS", "EXCHANGE_START_MS", "INTERVAL_MS", "Stream", "default_history", "history_start"]
