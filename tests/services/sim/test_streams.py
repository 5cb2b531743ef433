"""The stand-in's kline websocket: Binance's message shape, in-progress then closing events,
combined streams, dropped connections, malformed events on command, the maximum age."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import httpx
import pytest

from services.sim import BinanceSim, Market
from shared.market.klines import candle_from_rest, candle_from_ws, candle_to_rest

DAY = 86_400_000
SPEED = 3000.0


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.generated(["BTCUSDT", "ETHUSDT"], "5m", days=10, seed=4)


async def receive(ws: aiohttp.ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def test_raw_stream_sends_updates_then_the_closing_kline_equal_to_rest(market: Market) -> None:
    async with BinanceSim(market, speed=SPEED, start_ms=market.start_ms + 4 * DAY, updates=2) as sim, \
            aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@kline_5m") as ws:
            events = [await receive(ws) for _ in range(6)]
        assert set(events[0]) == {"e", "E", "s", "k"} and events[0]["e"] == "kline" and events[0]["s"] == "BTCUSDT"
        assert set(events[0]["k"]) == set("tTsifLochlvnxqVQB")
        closing = [e for e in events if e["k"]["x"]]
        assert len(closing) == 2  # 2 updates + 1 close per candle: two closes in six events
        first_close = events.index(closing[0])
        before = events[max(0, first_close - 2) : first_close]
        assert all(not e["k"]["x"] and e["k"]["t"] == closing[0]["k"]["t"] for e in before)
        assert all(e["E"] <= closing[0]["E"] for e in before)
        assert closing[0]["E"] > closing[0]["k"]["T"]  # sent once the candle is over
        async with session.get(f"{sim.rest_url}/api/v3/klines", params={
            "symbol": "BTCUSDT", "interval": "5m", "startTime": closing[0]["k"]["t"], "limit": 1}) as response:
            rest_row = (await response.json())[0]
        candle, closed = candle_from_ws(closing[0])
        assert closed and candle_to_rest(candle) == rest_row
        assert candle.model_copy(update={"first_trade_id": None, "last_trade_id": None}) == candle_from_rest(
            rest_row, "BTCUSDT", "5m")


async def test_combined_stream_wraps_events_of_several_symbols(market: Market) -> None:
    async with BinanceSim(market, speed=SPEED, start_ms=market.start_ms + 4 * DAY) as sim, \
            aiohttp.ClientSession() as session:
        url = f"{sim.ws_url}/stream?streams=btcusdt@kline_5m/ethusdt@kline_5m"
        async with session.ws_connect(url) as ws:
            events = [await receive(ws) for _ in range(6)]
    assert {e["stream"] for e in events} == {"btcusdt@kline_5m", "ethusdt@kline_5m"}
    assert all(e["data"]["s"] == e["stream"].split("@")[0].upper() for e in events)


async def test_unknown_streams_are_refused(market: Market) -> None:
    async with BinanceSim(market, speed=0) as sim, aiohttp.ClientSession() as session:
        for path in ("/ws/nopeusdt@kline_5m", "/ws/btcusdt@kline_1m", "/stream?streams="):
            async with session.get(sim.rest_url + path) as response:
                assert response.status == 400, path


async def test_drop_connections_cuts_every_socket(market: Market) -> None:
    async with BinanceSim(market, speed=SPEED, start_ms=market.start_ms + 4 * DAY) as sim, \
            aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@kline_5m") as a, \
                session.ws_connect(f"{sim.ws_url}/ws/ethusdt@kline_5m") as b:
            await receive(a)
            await receive(b)
            async with session.post(f"{sim.rest_url}/_sim/drop-connections") as response:
                assert (await response.json())["dropped"] == 2
            for ws in (a, b):
                while (msg := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
                    pass
                assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)


async def test_malformed_event_comes_before_the_real_closing_one(market: Market) -> None:
    async with BinanceSim(market, speed=SPEED, start_ms=market.start_ms + 4 * DAY) as sim, \
            aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@kline_5m") as ws:
            await receive(ws)
            sim.inject_malformed("high_low")
            while not (event := await receive(ws))["k"]["x"]:
                pass
            real = await receive(ws)
    assert float(event["k"]["h"]) < float(event["k"]["l"])
    assert real["k"]["x"] and real["k"]["t"] == event["k"]["t"] and float(real["k"]["h"]) >= float(real["k"]["l"])


async def test_connections_are_closed_at_their_maximum_age(market: Market) -> None:
    async with BinanceSim(market, speed=0, max_connection_age=0.3) as sim, aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@kline_5m") as ws:
            msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000


async def test_one_connection_carries_several_intervals_and_each_closes_on_its_own_grid(market: Market) -> None:
    # At 36,000x an hour passes in 0.1 s: 5m closes and 1h closes both arrive within a second.
    start = market.start_ms + 4 * DAY + 3_600_000 - 600_000
    async with BinanceSim(market, speed=36_000, start_ms=start, updates=1) as sim, aiohttp.ClientSession() as session:
        url = f"{sim.ws_url}/stream?streams=btcusdt@kline_5m/btcusdt@kline_1h"
        closes: dict[str, list[dict[str, Any]]] = {"btcusdt@kline_5m": [], "btcusdt@kline_1h": []}
        async with session.ws_connect(url) as ws:
            def whole_hour_seen() -> bool:  # the hour's last 5m close may come just after the hour's own
                hours = closes["btcusdt@kline_1h"]
                return len(hours) >= 2 and any(k["t"] == hours[1]["t"] + 3_300_000 for k in closes["btcusdt@kline_5m"])

            while not whole_hour_seen():
                event = await receive(ws)
                if event["data"]["k"]["x"]:
                    closes[event["stream"]].append(event["data"]["k"])
        async with session.get(f"{sim.rest_url}/api/v3/klines", params={
                "symbol": "BTCUSDT", "interval": "1h", "startTime": closes["btcusdt@kline_1h"][1]["t"],
                "limit": 1}) as response:
            rest_hour = (await response.json())[0]
    hours, fives = closes["btcusdt@kline_1h"], closes["btcusdt@kline_5m"]
    assert all(k["t"] % 3_600_000 == 0 and k["T"] == k["t"] + 3_599_999 and k["i"] == "1h" for k in hours)
    assert all(k["t"] % 300_000 == 0 and k["i"] == "5m" for k in fives) and len(fives) >= 12
    whole = hours[1]  # the first hour began before the connection; the second was seen whole
    hour_fives = [k for k in fives if whole["t"] <= k["t"] < whole["t"] + 3_600_000]
    assert len(hour_fives) == 12  # every 5m close of that hour came on the same connection
    assert float(whole["h"]) == max(float(k["h"]) for k in hour_fives)
    assert float(whole["c"]) == float(hour_fives[-1]["c"]) and whole["o"] == hour_fives[0]["o"]
    assert int(whole["n"]) == sum(int(k["n"]) for k in hour_fives)
    assert candle_to_rest(candle_from_ws({"e": "kline", "E": 0, "s": "BTCUSDT", "k": whole})[0]) == rest_hour


async def test_pings_carry_a_payload_and_a_client_that_does_not_echo_it_is_dropped(market: Market) -> None:
    async with BinanceSim(market, speed=0, ping_interval=0.2, pong_timeout=0.6) as sim, \
            aiohttp.ClientSession() as session:
        url = f"{sim.ws_url}/ws/btcusdt@kline_5m"
        async with session.ws_connect(url, autoping=False) as silent, session.ws_connect(url) as polite, \
                session.ws_connect(url, autoping=False) as wrong:
            reading = asyncio.create_task(polite.receive())  # aiohttp answers pings while it reads
            ping = await silent.receive(timeout=5)
            assert ping.type == aiohttp.WSMsgType.PING and ping.data  # Binance's pings carry a payload
            wrong_ping = await wrong.receive(timeout=5)
            await wrong.pong(b"not-" + wrong_ping.data)  # an unsolicited pong does not keep it alive
            for ws in (silent, wrong):
                msg = await ws.receive(timeout=5)
                while msg.type == aiohttp.WSMsgType.PING:  # more pings come until the first is overdue
                    msg = await ws.receive(timeout=5)
                assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
            assert not polite.closed and len(sim.hub.connections) == 1  # aiohttp echoes the payload
            reading.cancel()
        assert sim.streams.dropped_for_pong == 2


async def test_more_than_five_messages_a_second_closes_the_connection(market: Market) -> None:
    async with BinanceSim(market, speed=0) as sim, aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@kline_5m") as ws:
            for i in range(7):
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
            received = []
            while True:
                msg = await ws.receive(timeout=5)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                received.append(json.loads(msg.data))
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.close_code == 1008
            assert len(received) == 5  # the sixth message in a second is one too many
        assert sim.streams.dropped_for_flood == 1


async def test_server_shutdown_is_announced_before_the_close(market: Market) -> None:
    async with BinanceSim(market, speed=0) as sim, aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@kline_5m") as ws:
            async with httpx.AsyncClient() as client:
                assert (await client.post(f"{sim.rest_url}/_sim/server-shutdown")).json() == {"notified": 1}
            notice = json.loads((await ws.receive(timeout=5)).data)
            assert notice == {"e": "serverShutdown", "E": sim.clock.now_ms()}
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.close_code == 1001


async def test_a_frozen_path_stays_open_and_quiet_then_delivers(market: Market) -> None:
    async with BinanceSim(market, speed=600) as sim, aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@kline_5m", autoping=False) as ws:
            await receive(ws)  # events flow: several a second at 600x
            async with httpx.AsyncClient() as client:
                answer = await client.post(f"{sim.rest_url}/_sim/freeze", params={"seconds": 2})
            assert answer.json() == {"frozen": 1, "seconds": 2.0}
            with contextlib.suppress(TimeoutError):  # what was already on its way
                while True:
                    await ws.receive(timeout=0.2)
            await ws.ping(b"are-you-there")
            with pytest.raises(TimeoutError):  # no event, no pong: a path gone quiet
                await ws.receive(timeout=1.0)
            assert not ws.closed
            after = await ws.receive(timeout=5)  # then it delivers again
            assert after.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PONG)
        async with httpx.AsyncClient() as client:
            bad = await client.post(f"{sim.rest_url}/_sim/freeze", params={"seconds": "soon"})
        assert bad.status_code == 400 and "seconds" in bad.text


async def test_request_weight_is_counted_said_and_enforced(market: Market) -> None:
    async with BinanceSim(market, speed=0, weight_limit=10, weight_window=3600) as sim, httpx.AsyncClient() as client:
        used, codes = [], []
        for _ in range(6):  # klines weigh 2: the sixth call takes the minute to 12 of 10
            answer = await client.get(f"{sim.rest_url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "5m"})
            used.append(int(answer.headers["X-MBX-USED-WEIGHT-1M"]))
            codes.append(answer.status_code)
        assert used == [2, 4, 6, 8, 10, 12] and codes == [200] * 5 + [429]
        assert 1 <= int(answer.headers["Retry-After"]) <= 3600 and answer.json()["code"] == -1003
        assert sim.weights.refused == 1
