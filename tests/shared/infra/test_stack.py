"""`candlecast up` brings the four services up, each answering on its port; `down` leaves nothing."""

from pathlib import Path

import httpx

from shared.config import Settings
from shared.infra import stack
from shared.infra.process import port_open


def test_up_status_down(settings: Settings, tmp_path: Path, unused_tcp_port_factory) -> None:  # type: ignore[no-untyped-def]
    ports = [unused_tcp_port_factory() for _ in range(4)]
    s = settings.model_copy(update={
        "data_dir": tmp_path,
        "gateway_port": ports[0],
        "ingestor_metrics_port": ports[1],
        "predictor_metrics_port": ports[2],
        "trainer_metrics_port": ports[3],
    })
    try:
        stack.up(s)
        rows = dict(stack.status(s))
        for name in stack.SERVICES:
            assert "answering" in rows[name] and "not answering" not in rows[name], rows[name]
        assert rows["kafka"].startswith("external") and rows["postgres"].startswith("external")
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/health").json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/ready").json() == {"status": "ready"}
        for port in ports[1:]:
            body = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            assert "process_resident_memory_bytes" in body
        stack.up(s)  # idempotent: finds them running
        assert dict(stack.status(s)) == rows
    finally:
        stack.down(s)
    assert not any(port_open("127.0.0.1", p) for p in ports)
    assert all(not stack.process(s, name).running() for name in stack.SERVICES)


def test_the_demo_keeps_its_own_data_and_resumes_where_it_stopped(
    settings: Settings, tmp_path: Path, unused_tcp_port_factory, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    """`make demo`, `make down`, `make demo`: the stand-in goes on after the stored candles (no
    frozen dashboard), and nothing of the demo lands in the database or topics `make up` uses."""
    import asyncio

    import asyncpg

    from testkit.infra import drop_database
    from testkit.kafka import delete_topics
    from testkit.waiting import eventually

    monkeypatch.setenv("CANDLECAST_BACKFILL_DAYS", "1")
    monkeypatch.setenv("CANDLECAST_TRAIN_MIN_CANDLES", "1000000")  # no training here
    ports = [unused_tcp_port_factory() for _ in range(5)]
    s = settings.model_copy(update={
        "data_dir": tmp_path, "gateway_port": ports[0], "ingestor_metrics_port": ports[1],
        "predictor_metrics_port": ports[2], "trainer_metrics_port": ports[3], "sim_port": ports[4],
    })
    demo = stack.demo_settings(s)
    assert demo.database != s.database and demo.topic_prefix == f"{s.topic_prefix}demo-"

    async def stored(url: str) -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM candles"))
        finally:
            await conn.close()

    async def newest() -> int:
        return await stack.newest_stored_close(demo) or 0

    try:
        stack.up(s, demo=True)
        asyncio.run(eventually(lambda: stored(demo.database), "the demo's backfill", within=120))
        stack.down(s, keep_infra=True)
        first_run = asyncio.run(newest())
        assert asyncio.run(stored(s.database)) == 0  # `make up`'s database never saw the stand-in

        stack.up(s, demo=True)
        clock = httpx.get(f"http://127.0.0.1:{ports[4]}/_sim/clock").json()
        # The clock resumes after the stored candles (without it, it restarts 91 days into the data: behind them).
        assert first_run < clock["now"] < first_run + 86_400_000

        async def goes_on() -> bool:
            return await newest() > first_run

        asyncio.run(eventually(goes_on, "new live candles after the restart", within=60))
    finally:
        stack.down(s, keep_infra=True)
        asyncio.run(drop_database(demo.database))
        asyncio.run(delete_topics(demo))
