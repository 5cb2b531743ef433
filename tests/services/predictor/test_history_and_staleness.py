"""The in-memory candle history and the staleness alarm (pure: no Kafka, no database)."""

from __future__ import annotations

import pytest

from services.predictor.history import CandleHistory
from services.predictor.metrics import CANDLES_STALE, SECONDS_SINCE_LAST_CANDLE
from services.predictor.staleness import StalenessWatch
from shared.market.streams import Stream
from tests.services.predictor.support import STEP, candle_frame


def test_live_candles_append_and_old_ones_are_trimmed() -> None:
    frame = candle_frame(30)
    history = CandleHistory(STEP, keep=10)
    history.merge(frame.iloc[:20])
    for i in range(20, 30):
        history.merge(frame.iloc[i : i + 1])
    assert len(history) == 30
    history.trim(upto=int(frame["open_time"].iloc[-1]))
    assert list(history.frame["open_time"]) == list(frame["open_time"].iloc[20:])


def test_a_replay_keeps_the_candles_it_goes_on_from_as_well_as_the_newest() -> None:
    frame = candle_frame(100)
    times = frame["open_time"]
    history = CandleHistory(STEP, keep=10)
    history.merge(frame.iloc[80:])  # the newest, from the warm-up
    history.merge(frame.iloc[20:40])  # a replayed batch
    history.trim(upto=int(times.iloc[39]))
    assert list(history.frame["open_time"]) == list(times.iloc[30:40]) + list(times.iloc[90:])
    assert history.missing_range(int(times.iloc[40]), 10) is None  # the replay goes on from memory
    assert history.missing_range(int(times.iloc[100 - 1]) + STEP, 10) is None  # so does live


def test_a_replayed_or_late_candle_is_merged_in_order_once() -> None:
    frame = candle_frame(10)
    history = CandleHistory(STEP, keep=100)
    history.merge(frame.iloc[[0, 1, 2, 5, 6]])
    changed = frame.iloc[[3, 4, 5]].copy()
    changed.loc[changed.index[-1], "close"] = 1.0  # the later copy of a candle wins
    history.merge(changed)
    assert list(history.frame["open_time"]) == list(frame["open_time"].iloc[:7])
    assert history.frame["close"].iloc[5] == 1.0
    assert list(history.positions(frame["open_time"].iloc[[2, 6]].to_numpy())) == [2, 6]
    with pytest.raises(KeyError):
        history.positions(frame["open_time"].iloc[[8]].to_numpy())


def test_history_asks_the_store_only_for_what_it_lacks_and_only_once() -> None:
    frame = candle_frame(200)
    times = frame["open_time"]
    t = lambda i: int(times.iloc[i])  # noqa: E731
    history = CandleHistory(STEP, keep=100, floor=t(0))
    assert history.missing_range(t(150), 60) == (t(90), t(150))  # nothing held yet
    history.merge(frame.iloc[100:150])
    assert history.missing_range(t(150), 50) is None  # live: the buffer has it
    assert history.missing_range(t(120), 60) == (t(60), t(120))  # a replay of older candles
    outage = frame.iloc[60:120].drop(index=[70, 71])  # the exchange never had candles 70 and 71
    history.loaded(outage, t(60), t(120))
    assert history.missing_range(t(120), 60) is None  # not asked for again
    young = CandleHistory(STEP, keep=100, floor=t(0))  # the store starts at candle 0
    young.merge(frame.iloc[:5])
    assert young.missing_range(t(5), 60) is None


def test_staleness_alarm_after_two_intervals_without_a_candle_per_stream() -> None:
    now = [1000.0]
    minute, hour = Stream("BTCUSDT", "1m"), Stream("BTCUSDT", "1h")
    watch = StalenessWatch([minute, hour], clock=lambda: now[0])
    now[0] += 119
    assert watch.check() == []
    now[0] += 2
    assert watch.check() == [minute]  # two minutes without a 1m candle; the hourly stream is fine
    assert watch.check() == []  # alarmed once, not on every check
    assert CANDLES_STALE.labels("BTCUSDT", "1m")._value.get() == 1
    assert CANDLES_STALE.labels("BTCUSDT", "1h")._value.get() == 0
    assert SECONDS_SINCE_LAST_CANDLE.labels("BTCUSDT", "1m")._value.get() == pytest.approx(121)
    watch.seen(minute)
    assert watch.stale == set()
    assert CANDLES_STALE.labels("BTCUSDT", "1m")._value.get() == 0
    now[0] += 7200
    assert watch.check() == [minute, hour]


def test_a_gap_before_a_batch_is_noticed() -> None:
    """After a restart the store may lag the stream: the candles just before a batch are missing."""
    frame = candle_frame(20)
    times = frame["open_time"]
    history = CandleHistory(STEP, keep=100)
    assert not history.gap_before(int(times.iloc[10]))  # nothing held: nothing to be continuous with
    history.merge(frame.iloc[:5])
    assert not history.gap_before(int(times.iloc[5]))
    assert history.gap_before(int(times.iloc[9]))
    assert not history.gap_before(int(times.iloc[3]))  # a replay inside what is held
