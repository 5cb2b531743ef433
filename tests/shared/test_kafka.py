"""A message sent with FastStream, or in record batches, reaches a subscriber through the real broker."""

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaMessage

from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Candle, DeadLetter
from shared.messaging.runtime import dead_letter, make_broker, make_producer, send_event, send_in_batches
from testkit.kafka import delete_topics, read_topic


def candle(i: int) -> Candle:
    t = 1_700_000_000_000 + i * 300_000
    return Candle(symbol="BTCUSDT", interval="5m", open_time=t, close_time=t + 299_999, open=100, high=101,
                  low=99, close=100.5, volume=1, quote_volume=100, trades=5, taker_buy_base_volume=0.5,
                  taker_buy_quote_volume=50)


async def test_topics_exist_with_the_prefix(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka)
    await admin.start()
    try:
        names = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {settings.topic(t) for t in topics.ALL_TOPICS} <= names
    assert await topics.ensure_topics(settings) == []  # idempotent


async def test_faststream_event_round_trip_on_the_real_broker(settings: Settings) -> None:
    broker = make_broker(settings, "test")
    received: list[tuple[Candle, bytes | None]] = []
    done = asyncio.Event()

    @broker.subscriber(settings.topic(topics.CANDLES), group_id=f"{settings.topic_prefix}g",
                       auto_offset_reset="earliest")
    async def on_candle(body: Candle, message: KafkaMessage) -> None:
        received.append((body, message.raw_message.key))
        if len(received) == 3:
            done.set()

    await broker.start()
    try:
        for i in range(3):
            await broker.publish(candle(i), settings.topic(topics.CANDLES), key=topics.symbol_key("btcusdt"))
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await broker.stop()
    assert [c.open_time for c, _ in received] == [candle(i).open_time for i in range(3)]
    assert {k for _, k in received} == {b"BTCUSDT"}


async def test_dead_letter_carries_the_reason_and_payload(settings: Settings) -> None:
    broker = make_broker(settings, "test")
    got: asyncio.Future[DeadLetter] = asyncio.get_running_loop().create_future()

    @broker.subscriber(settings.topic(topics.DEAD_LETTER), group_id=f"{settings.topic_prefix}dl",
                       auto_offset_reset="earliest")
    async def on_letter(letter: DeadLetter) -> None:
        if not got.done():
            got.set_result(letter)

    await broker.start()
    try:
        await dead_letter(broker, settings, service="test", source_topic="candles", reason="not JSON",
                          payload=b"\xff{garbage", key=b"BTCUSDT")
        letter = await asyncio.wait_for(got, 30)
    finally:
        await broker.stop()
    assert letter.reason == "not JSON" and letter.source_topic == "candles"
    assert letter.payload.endswith("{garbage") and letter.key == "BTCUSDT"



async def test_batched_events_land_where_one_by_one_events_of_their_key_do_and_keep_their_order(
    settings: Settings,
) -> None:
    """An import's candles must share a symbol's partition with its live candles (published one at
    a time through FastStream), or their order across the two would be lost."""
    settings = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}p6-", "kafka_partitions": 6})
    await topics.ensure_topics(settings)
    symbols = [f"S{i:02d}USDT" for i in range(24)]
    events = [(topics.symbol_key(s), candle(i).model_copy(update={"symbol": s}))
              for i in range(40) for s in symbols]
    topic = settings.topic(topics.CANDLES)
    producer = make_producer(settings, "test")
    broker = make_broker(settings, "test")
    await producer.start()
    await broker.start()
    try:
        assert await send_in_batches(producer, topic, events) == len(events)
        alone = {s: (await (await send_event(broker, candle(99).model_copy(update={"symbol": s}), topic,
                                            topics.symbol_key(s)))).partition for s in symbols}
        records = await read_topic(settings, topics.CANDLES)
    finally:
        await broker.stop()
        await producer.stop()
        await delete_topics(settings)
    assert len(set(alone.values())) > 1  # the keys spread over the partitions: the check means something
    seen: dict[str, list[int]] = {}
    for record in records:
        body = Candle.model_validate_json(record.value)
        assert record.partition == alone[body.symbol], body.symbol
        assert dict(record.headers)["content-type"] == b"application/json"
        seen.setdefault(body.symbol, []).append(body.open_time)
    for s in symbols:
        assert seen[s] == [candle(i).open_time for i in range(40)] + [candle(99).open_time]
