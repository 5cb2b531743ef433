import asyncpg

from testkit.invariants import check_invariants

STEP = 300_000
T0 = 1_700_000_100_000 - 1_700_000_100_000 % STEP


async def insert_candles(db: asyncpg.Connection, times: list[int]) -> None:
    await db.executemany(
        """INSERT INTO candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
               quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume)
           VALUES ('BTCUSDT', '5m', $1::bigint, $1::bigint + 299999, 1, 2, 0.5, 1.5, 1, 1, 1, 0.5, 0.5)""",
        [(t,) for t in times],
    )


async def insert_futures(db: asyncpg.Connection, times: list[int]) -> None:
    await db.executemany(
        """INSERT INTO futures (symbol, interval, time, base_time, pred_open, pred_high, pred_low, pred_close,
               pred_amplitude, p_up, model_version)
           VALUES ('BTCUSDT', '5m', $1::bigint, $1::bigint - 300000, 1, 1, 1, 1, 0, 0.5, 'v1')""",
        [(t,) for t in times],
    )


async def test_a_complete_range_passes(db: asyncpg.Connection) -> None:
    times = [T0 + i * STEP for i in range(20)]
    await insert_candles(db, times)
    await insert_futures(db, times[5:])
    report = await check_invariants(db, "BTCUSDT", "5m", STEP, times[0], times[-1], window=5)
    assert report.ok, str(report)
    assert report.candles == 20 and report.futures_expected == 15


async def test_holes_are_named(db: asyncpg.Connection) -> None:
    times = [T0 + i * STEP for i in range(20)]
    await insert_candles(db, [t for t in times if t != times[7]])
    await insert_futures(db, [t for t in times[5:] if t != times[12]])
    report = await check_invariants(db, "BTCUSDT", "5m", STEP, times[0], times[-1], window=5)
    assert not report.ok
    assert report.missing_candles == [times[7]]
    assert report.missing_futures == [times[12]]
    assert "1 missing candles" in str(report) and "1 missing futures" in str(report)
