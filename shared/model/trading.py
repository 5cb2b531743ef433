"""Can you trade it? A plain strategy from `p_up`, with Binance's taker fee, on the backtest's rows.

At the close of candle t the model says p_up for candle t+1: hold long through t+1 when
p_up > `long_above`, short when p_up < `short_below`, else stay flat. The position earns the
close-to-close log return of t+1; every change of position pays the taker fee per side (0.1%
on Binance without discounts: flat -> long is one side, long -> short two). Rows must be
consecutive candles for the holding periods to chain; each fold's test block is.

The literature's answer for 5-minute crypto is that a direction accuracy near 52% does not
survive fees of 0.1% per side; this reports whatever the numbers say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TAKER_FEE = 0.001


@dataclass(frozen=True)
class Strategy:
    long_above: float = 0.55
    short_below: float = 0.45
    fee: float = TAKER_FEE

    def __post_init__(self) -> None:
        if not 0 <= self.short_below <= self.long_above <= 1:
            raise ValueError("need 0 <= short_below <= long_above <= 1")

    def positions(self, p_up: np.ndarray) -> np.ndarray:
        p = np.asarray(p_up, np.float64)
        return np.where(p > self.long_above, 1.0, np.where(p < self.short_below, -1.0, 0.0))

    def report(self, p_up: np.ndarray, base_close: np.ndarray, next_close: np.ndarray) -> dict[str, float]:
        """Gross and net return (as fractions, compounded), trades, time in the market, hit rate."""
        position = self.positions(p_up)
        returns = np.log(np.asarray(next_close, np.float64) / np.asarray(base_close, np.float64))
        gross = position * returns
        turnover = np.abs(np.diff(np.concatenate([[0.0], position, [0.0]])))  # open, switch, and close at the end
        costs = np.log1p(-self.fee) * turnover
        cost_per_row = costs[:-1].copy()
        cost_per_row[-1:] += costs[-1:]  # the final exit is paid on the last row
        net = gross + cost_per_row
        active = position != 0
        hits = gross[active] > 0
        return {
            "rows": float(len(position)),
            "long_above": self.long_above,
            "short_below": self.short_below,
            "fee_per_side": self.fee,
            "trades": float(np.count_nonzero(turnover)),
            "exposure": float(np.mean(active)) if len(active) else math.nan,
            "hit_rate": float(np.mean(hits)) if hits.size else math.nan,
            "gross_return": float(np.expm1(gross.sum())),
            "net_return": float(np.expm1(net.sum())),
            "buy_and_hold_return": float(np.expm1(returns.sum())),
        }
