"""The websocket hub alone (no I/O): who gets a message, a slow client loses its oldest, a client
that has gone stops its sender even with a full queue."""

from __future__ import annotations

from services.gateway.live import QUEUE_SIZE, Hub, Subscriber


def _message(symbol: str, interval: str, n: int) -> dict[str, object]:
    return {"type": "prediction", "data": {"symbol": symbol, "interval": interval, "n": n}}


def _texts(queue_items: list[str | None]) -> list[object]:
    import json

    return [None if t is None else json.loads(t)["data"]["n"] for t in queue_items]


def _drain(subscriber: Subscriber) -> list[str | None]:
    out: list[str | None] = []
    while not subscriber.queue.empty():
        out.append(subscriber.queue.get_nowait())
    return out


def test_each_client_gets_what_it_asked_for() -> None:
    hub = Hub()
    every, btc, btc_1d = hub.subscribe(None), hub.subscribe("BTCUSDT"), hub.subscribe("BTCUSDT", "1d")
    assert hub.publish(_message("BTCUSDT", "5m", 1)) == 2
    assert hub.publish(_message("ETHUSDT", "1d", 2)) == 1
    assert hub.publish(_message("BTCUSDT", "1d", 3)) == 3
    assert (_texts(_drain(every)), _texts(_drain(btc)), _texts(_drain(btc_1d))) == ([1, 2, 3], [1, 3], [3])
    hub.unsubscribe(btc)
    assert hub.publish(_message("BTCUSDT", "5m", 4)) == 1 and len(hub) == 2


def test_a_slow_client_loses_its_oldest_and_a_gone_one_stops_even_when_full() -> None:
    hub = Hub()
    slow = hub.subscribe(None)
    for n in range(QUEUE_SIZE + 10):
        hub.publish(_message("BTCUSDT", "5m", n))
    slow.gone()
    kept = _texts(_drain(slow))
    assert kept[-1] is None and len(kept) == QUEUE_SIZE
    assert kept[:-1] == list(range(11, QUEUE_SIZE + 10))  # the newest, in order
