"""A local stand-in for Binance's kline REST and websocket API (`candlecast sim`)."""

from services.sim.generate import RegimeChange
from services.sim.market import Market
from services.sim.server import BinanceSim

__all__ = ["BinanceSim", "Market", "RegimeChange"]
