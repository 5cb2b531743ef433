"""The one conversion between Binance's kline shapes and `shared.messaging.events.Candle`, with its checks.

Binance sends a kline two ways: the REST `GET /api/v3/klines` row (a 12-element array, decimals as
strings) and the websocket kline event (`{"e": "kline", "E": ..., "s": ..., "k": {...}}`). The
ingestor reads both and the stand-in writes both, through the functions here, so the two sides
cannot drift apart.

A kline that cannot be a candle raises `KlineError` whose `reason` says which rule it broke
(high below low, a NaN, a negative volume, an unknown symbol, a time off the interval's grid);
the ingestor puts that reason on the dead letter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.config import interval_ms
from shared.messaging.events import Candle
from shared.messaging.runtime import validation_reason

REST_FIELDS = 12
# Binance's archive names: BTCUSDT-5m-2024-01.csv (monthly) or BTCUSDT-5m-2024-01-15.csv (daily).
ARCHIVE_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdwM])-\d{4}-\d{2}(-\d{2})?\.(csv|zip)$")

_PRICES = ("open", "high", "low", "close")
_VOLUMES = ("volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume")
_WS_KEYS = ("t", "T", "s", "i", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q")


class KlineError(ValueError):
    """A kline that breaks a rule; `reason` is the one-line explanation for the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _number(name: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise KlineError(f"{name} is not a number ({raw!r})")
    try:
        value = float(raw)
    except ValueError:
        raise KlineError(f"{name} is not a number ({raw!r})") from None
    if not math.isfinite(value):
        raise KlineError(f"{name} is not a finite number ({raw!r})")
    return value


def _integer(name: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise KlineError(f"{name} is not an integer ({raw!r})")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            pass
    raise KlineError(f"{name} is not an integer ({raw!r})")


def _build(
    fields: dict[str, Any],
    *,
    symbols: Collection[str] | None,
    interval: str | None,
) -> Candle:
    """Check the rules in a fixed order (the first broken one is the reason), then build the event."""
    symbol = fields["symbol"]
    if not isinstance(symbol, str) or not symbol:
        raise KlineError(f"symbol is missing or not text ({symbol!r})")
    if symbols is not None and symbol not in symbols:
        raise KlineError(f"unknown symbol {symbol!r} (expected one of {', '.join(sorted(symbols))})")
    kline_interval = fields["interval"]
    if interval is not None and kline_interval != interval:
        raise KlineError(f"interval {kline_interval!r} but this stream is {interval!r}")
    try:
        step = interval_ms(str(kline_interval))
    except ValueError as exc:
        raise KlineError(str(exc)) from None

    values = {name: _number(name, fields[name]) for name in (*_PRICES, *_VOLUMES)}
    open_time = _integer("open_time", fields["open_time"])
    close_time = _integer("close_time", fields["close_time"])
    trades = _integer("trades", fields["trades"])

    if values["high"] < values["low"]:
        raise KlineError(f"high {values['high']} is below low {values['low']}")
    for name in _VOLUMES:
        if values[name] < 0:
            raise KlineError(f"{name} is negative ({values[name]})")
    if trades < 0:
        raise KlineError(f"trades is negative ({trades})")
    if open_time % step != 0:
        raise KlineError(f"open_time {open_time} is not on the {kline_interval} grid (off by {open_time % step} ms)")
    if close_time != open_time + step - 1:
        raise KlineError(f"close_time {close_time} is not open_time + {kline_interval} - 1 ({open_time + step - 1})")

    try:
        return Candle(
            symbol=symbol,
            interval=str(kline_interval),
            open_time=open_time,
            close_time=close_time,
            open=values["open"],
            high=values["high"],
            low=values["low"],
            close=values["close"],
            volume=values["volume"],
            quote_volume=values["quote_volume"],
            trades=trades,
            taker_buy_base_volume=values["taker_buy_base_volume"],
            taker_buy_quote_volume=values["taker_buy_quote_volume"],
            first_trade_id=fields.get("first_trade_id"),
            last_trade_id=fields.get("last_trade_id"),
        )
    except ValidationError as exc:
        raise KlineError(validation_reason(exc)) from None


def candle_from_rest(
    row: Sequence[Any],
    symbol: str,
    interval: str,
    *,
    symbols: Collection[str] | None = None,
) -> Candle:
    """A `GET /api/v3/klines` row as a Candle; the row does not name its symbol, so the request does."""
    if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != REST_FIELDS:
        size = len(row) if isinstance(row, Sequence) else "no"
        raise KlineError(f"a REST kline has {REST_FIELDS} fields, this one has {size}")
    fields = {
        "symbol": symbol,
        "interval": interval,
        "open_time": row[0],
        "open": row[1],
        "high": row[2],
        "low": row[3],
        "close": row[4],
        "volume": row[5],
        "close_time": row[6],
        "quote_volume": row[7],
        "trades": row[8],
        "taker_buy_base_volume": row[9],
        "taker_buy_quote_volume": row[10],
    }
    return _build(fields, symbols=symbols, interval=interval)


def candle_from_ws(
    event: Mapping[str, Any],
    *,
    symbols: Collection[str] | None = None,
    interval: str | None = None,
) -> tuple[Candle, bool]:
    """A websocket kline event (the `data` of a combined stream) as (Candle, closed?)."""
    kline = event.get("k")
    if not isinstance(kline, Mapping):
        raise KlineError("the event has no kline object 'k'")
    missing = [key for key in _WS_KEYS if key not in kline]
    if missing:
        raise KlineError(f"the kline lacks field(s) {', '.join(missing)}")
    if event.get("s") is not None and event.get("s") != kline["s"]:
        raise KlineError(f"event symbol {event.get('s')!r} differs from kline symbol {kline['s']!r}")
    closed = kline["x"]
    if not isinstance(closed, bool):
        raise KlineError(f"x (closed) is not a boolean ({closed!r})")
    first, last = kline.get("f"), kline.get("L")
    fields = {
        "symbol": kline["s"],
        "interval": kline["i"],
        "open_time": kline["t"],
        "close_time": kline["T"],
        "open": kline["o"],
        "high": kline["h"],
        "low": kline["l"],
        "close": kline["c"],
        "volume": kline["v"],
        "quote_volume": kline["q"],
        "trades": kline["n"],
        "taker_buy_base_volume": kline["V"],
        "taker_buy_quote_volume": kline["Q"],
        # Binance sends -1 for "no trade yet"; the event keeps None for "not known".
        "first_trade_id": first if isinstance(first, int) and first >= 0 else None,
        "last_trade_id": last if isinstance(last, int) and last >= 0 else None,
    }
    return _build(fields, symbols=symbols, interval=interval), closed


def _decimal(value: float) -> str:
    return f"{value:.8f}"


def candle_to_rest(candle: Candle) -> list[Any]:
    """The REST row Binance would send for this candle (decimals as 8-place strings)."""
    return [
        candle.open_time,
        _decimal(candle.open),
        _decimal(candle.high),
        _decimal(candle.low),
        _decimal(candle.close),
        _decimal(candle.volume),
        candle.close_time,
        _decimal(candle.quote_volume),
        candle.trades,
        _decimal(candle.taker_buy_base_volume),
        _decimal(candle.taker_buy_quote_volume),
        "0",
    ]


def candle_to_ws(candle: Candle, *, closed: bool, event_time: int) -> dict[str, Any]:
    """The websocket kline event Binance would send for this candle at `event_time`."""
    first = candle.first_trade_id if candle.first_trade_id is not None else -1
    last = candle.last_trade_id if candle.last_trade_id is not None else -1
    return {
        "e": "kline",
        "E": event_time,
        "s": candle.symbol,
        "k": {
            "t": candle.open_time,
            "T": candle.close_time,
            "s": candle.symbol,
            "i": candle.interval,
            "f": first,
            "L": last,
            "o": _decimal(candle.open),
            "c": _decimal(candle.close),
            "h": _decimal(candle.high),
            "l": _decimal(candle.low),
            "v": _decimal(candle.volume),
            "n": candle.trades,
            "x": closed,
            "q": _decimal(candle.quote_volume),
            "V": _decimal(candle.taker_buy_base_volume),
            "Q": _decimal(candle.taker_buy_quote_volume),
            "B": "0",
        },
    }


def stream_name(symbol: str, interval: str) -> str:
    """Binance's kline stream name: lower-case symbol, e.g. `btcusdt@kline_5m`."""
    return f"{symbol.lower()}@kline_{interval}"


def align_down(time_ms: int, step_ms: int) -> int:
    """The open time of the candle containing `time_ms` (intervals are aligned to the epoch)."""
    return time_ms - time_ms % step_ms


def parse_archive_name(path: Path) -> tuple[str, str] | None:
    """(symbol, interval) from a Binance archive file name, or None if it is not one."""
    match = ARCHIVE_NAME.match(path.name)
    return (match["symbol"], match["interval"]) if match else None
