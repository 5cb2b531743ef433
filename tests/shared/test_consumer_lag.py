from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.config import Settings
from shared.messaging import topics
from shared.messaging.consumer_lag import CONSUMER_LAG, group_lag, report_lag_forever


async def test_lag_counts_uncommitted_messages(settings: Settings) -> None:
    topic = settings.topic(topics.CANDLES)
    group = f"{settings.topic_prefix}lag"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=b"BTCUSDT")
    finally:
        await producer.stop()
    assert await group_lag(settings.kafka, group, [topic]) == {(topic, 0): 5}

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        got = 0
        while got < 3:
            batch = await consumer.getmany(timeout_ms=5000, max_records=3 - got)
            for records in batch.values():
                got += len(records)
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
    finally:
        await consumer.stop()
    assert await group_lag(settings.kafka, group, [topic]) == {(topic, 0): 2}

    import asyncio

    task = asyncio.create_task(report_lag_forever("test", settings.kafka, group, [topic], every=0.1))
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            if CONSUMER_LAG.labels("test", topic, "0")._value.get() == 2:
                break
    finally:
        task.cancel()
    assert CONSUMER_LAG.labels("test", topic, "0")._value.get() == 2
