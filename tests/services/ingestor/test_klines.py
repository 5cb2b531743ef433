"""shared.market.klines: Binance's REST rows and websocket events <-> Candle, and each rule's reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.market.klines import KlineError, candle_from_rest, candle_from_ws, candle_to_rest, candle_to_ws
from shared.messaging.events import Candle

# A real BTCUSDT 5m kline as GET /api/v3/klines returns it.
REST_ROW = [1696118400000, "26962.57000000", "26965.88000000", "26955.30000000", "26965.87000000",
            "27.00851000", 1696118699999, "728091.72578460", 2047, "13.53558000", "364890.08119500", "0"]
WS_EVENT: dict[str, Any] = {
    "e": "kline", "E": 1696118700012, "s": "BTCUSDT",
    "k": {"t": 1696118400000, "T": 1696118699999, "s": "BTCUSDT", "i": "5m", "f": 3237000001, "L": 3237002047,
          "o": "26962.57000000", "c": "26965.87000000", "h": "26965.88000000", "l": "26955.30000000",
          "v": "27.00851000", "n": 2047, "x": True, "q": "728091.72578460", "V": "13.53558000",
          "Q": "364890.08119500", "B": "0"},
}


def test_rest_row_and_websocket_event_give_the_same_candle() -> None:
    from_rest = candle_from_rest(REST_ROW, "BTCUSDT", "5m")
    from_ws, closed = candle_from_ws(WS_EVENT)
    assert closed is True
    assert from_ws.model_copy(update={"first_trade_id": None, "last_trade_id": None}) == from_rest
    assert (from_ws.first_trade_id, from_ws.last_trade_id) == (3237000001, 3237002047)
    assert from_rest.close == 26965.87 and from_rest.trades == 2047 and from_rest.quote_volume == 728091.7257846


def test_writing_back_gives_binance_s_exact_shapes() -> None:
    candle = candle_from_ws(WS_EVENT)[0]
    assert candle_to_rest(candle) == REST_ROW
    assert candle_to_ws(candle, closed=True, event_time=WS_EVENT["E"]) == WS_EVENT
    forming = candle_to_ws(candle, closed=False, event_time=1)
    assert forming["k"]["x"] is False and candle_from_ws(forming)[1] is False


def test_no_trades_yet_is_minus_one_on_the_wire_and_none_in_the_event() -> None:
    event = json.loads(json.dumps(WS_EVENT))
    event["k"].update({"f": -1, "L": -1, "n": 0})
    candle: Candle = candle_from_ws(event)[0]
    assert candle.first_trade_id is None and candle.last_trade_id is None


def _rest(**changes: Any) -> list[Any]:
    row = list(REST_ROW)
    names = ["t", "o", "h", "l", "c", "v", "T", "q", "n", "V", "Q", "B"]
    for name, value in changes.items():
        row[names.index(name)] = value
    return row


@pytest.mark.parametrize(
    ("row", "symbols", "reason"),
    [
        (_rest(h="26900.00000000"), None, "high 26900.0 is below low 26955.3"),
        (_rest(c="NaN"), None, "close is not a finite number ('NaN')"),
        (_rest(o="abc"), None, "open is not a number ('abc')"),
        (_rest(v="-1.00000000"), None, "volume is negative (-1.0)"),
        (_rest(Q="-0.1"), None, "taker_buy_quote_volume is negative (-0.1)"),
        (_rest(n=-3), None, "trades is negative (-3)"),
        (_rest(t=1696118400000 + 1000, T=1696118699999 + 1000), None, "not on the 5m grid (off by 1000 ms)"),
        (_rest(T=1696118400000 + 59_999), None, "close_time 1696118459999 is not open_time + 5m - 1"),
        (REST_ROW, ["ETHUSDT"], "unknown symbol 'BTCUSDT' (expected one of ETHUSDT)"),
        (REST_ROW[:11], None, "a REST kline has 12 fields, this one has 11"),
        (_rest(c="27000.00000000"), None, "high must be >= max(open, close)"),
    ],
)
def test_each_broken_rule_is_named(row: list[Any], symbols: list[str] | None, reason: str) -> None:
    with pytest.raises(KlineError) as caught:
        candle_from_rest(row, "BTCUSDT", "5m", symbols=symbols)
    assert reason in caught.value.reason


def test_websocket_specific_checks() -> None:
    with pytest.raises(KlineError, match="no kline object"):
        candle_from_ws({"e": "kline"})
    event = json.loads(json.dumps(WS_EVENT))
    del event["k"]["c"]
    with pytest.raises(KlineError, match="lacks field"):
        candle_from_ws(event)
    with pytest.raises(KlineError, match="interval '5m' but this stream is '1m'"):
        candle_from_ws(WS_EVENT, interval="1m")
    event = json.loads(json.dumps(WS_EVENT))
    event["k"]["x"] = "yes"
    with pytest.raises(KlineError, match="not a boolean"):
        candle_from_ws(event)
