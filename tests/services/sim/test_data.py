"""The stand-in's data: reproducible generated walks with a regime change, and archive files
it writes in Binance's exact format and reads back (via shared.market.binance_csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.sim import Market, RegimeChange
from services.sim.archive import write_monthly_archives
from services.sim.main import parse_when
from services.sim.server import default_start
from shared import cli
from shared.market.binance_csv import read_archive_csv

DAY = 86_400_000


def test_same_seed_same_candles_and_a_different_seed_differs() -> None:
    a = Market.generated(["BTCUSDT"], "5m", days=3, seed=9).series["BTCUSDT"].frame()
    b = Market.generated(["BTCUSDT"], "5m", days=3, seed=9).series["BTCUSDT"].frame()
    c = Market.generated(["BTCUSDT"], "5m", days=3, seed=10).series["BTCUSDT"].frame()
    assert a.equals(b) and not a.equals(c)
    assert len(a) == 864 and (a["high"] >= a[["open", "close"]].max(axis=1)).all()
    assert (a["low"] <= a[["open", "close"]].min(axis=1)).all()
    assert (a["open"].iloc[1:].to_numpy() == a["close"].iloc[:-1].to_numpy()).all()  # opens at the last close


def test_regime_change_jumps_and_raises_volatility() -> None:
    start = Market.generated(["BTCUSDT"], "5m", days=1).start_ms
    at = start + 10 * DAY
    calm = Market.generated(["BTCUSDT"], "5m", days=20, seed=1).series["BTCUSDT"].frame()
    shifted = Market.generated(["BTCUSDT"], "5m", days=20, seed=1,
                               regime=RegimeChange(at_ms=at, jump=0.1, vol_factor=5.0)).series["BTCUSDT"].frame()
    before = shifted["open_time"] < at
    assert calm[before].equals(shifted[before])  # identical until the change
    first = int(np.argmax(~before.to_numpy()))
    jump = np.log(shifted["close"].iloc[first] / shifted["close"].iloc[first - 1])
    assert jump > 0.05
    returns = np.diff(np.log(shifted["close"].to_numpy()))
    assert returns[first + 1 :].std() > 3 * returns[: first - 1].std()


def test_written_archives_are_binance_s_format_and_read_back_identical(tmp_path: Path) -> None:
    market = Market.generated(["BTCUSDT", "ETHUSDT"], "5m", days=35, seed=3, start_ms=1_706_054_400_000)
    paths = write_monthly_archives(market, tmp_path)
    assert sorted(p.name for p in paths) == [
        "BTCUSDT-5m-2024-01.csv", "BTCUSDT-5m-2024-02.csv", "ETHUSDT-5m-2024-01.csv", "ETHUSDT-5m-2024-02.csv"]
    first_line = paths[0].read_text().splitlines()[0].split(",")
    assert len(first_line) == 12 and first_line[0] == "1706054400000" and first_line[6] == "1706054699999"
    assert all(len(f.split(".")[1]) == 8 for f in first_line[1:6]) and first_line[11] == "0"
    frame = read_archive_csv(paths[0])
    original = market.series["BTCUSDT"].frame()
    assert frame.equals(original.iloc[: len(frame)].reset_index(drop=True))
    reloaded = Market.from_csv_dir(tmp_path)
    assert reloaded.symbols == ["BTCUSDT", "ETHUSDT"] and reloaded.interval == "5m"
    assert reloaded.series["ETHUSDT"].frame().equals(market.series["ETHUSDT"].frame())


def test_archive_folders_with_several_intervals_serve_the_finest_as_base_and_the_rest_as_given(
    tmp_path: Path,
) -> None:
    five, daily = tmp_path / "5m", tmp_path / "1d"
    write_monthly_archives(Market.generated(["BTCUSDT"], "5m", days=3), five)
    given = Market.generated(["BTCUSDT"], "1d", days=40, start_ms=1_700_000_000_000 // DAY * DAY, seed=9)
    write_monthly_archives(given, daily)
    market = Market.from_csv_dir(five, daily)
    assert market.interval == "5m" and {"5m", "15m", "1h", "4h", "1d"} <= set(market.intervals)
    served = market.at("BTCUSDT", "1d")
    assert served is not None and served.frame().equals(given.series["BTCUSDT"].frame())  # not an aggregate
    assert Market.from_csv_dir(five, daily, interval="1d").interval == "1d"
    with pytest.raises(ValueError, match="no 1h archive files"):
        Market.from_csv_dir(five, interval="1h")
    with pytest.raises(ValueError, match="no Binance archive files"):
        Market.from_csv_dir(tmp_path)


def test_a_day_is_aggregated_from_5m_candles_as_binance_does() -> None:
    market = Market.generated(["BTCUSDT"], "5m", days=3, start_ms=1_704_067_200_000 + 6 * 3_600_000, seed=4)
    base = market.series["BTCUSDT"].frame()
    day = market.at("BTCUSDT", "1d")
    assert day is not None and market.at("BTCUSDT", "7m") is None and market.at("XRPUSDT", "1d") is None
    second = 1_704_153_600_000  # 2024-01-02 00:00 UTC: a whole day of 288 candles
    rows = base[(base["open_time"] >= second) & (base["open_time"] < second + DAY)]
    assert len(rows) == 288
    i = day.index_of(second)
    assert i is not None
    candle = day.candle(i)
    assert candle.open_time == second and candle.close_time == second + DAY - 1
    assert candle.open == rows["open"].iloc[0] and candle.close == rows["close"].iloc[-1]
    assert candle.high == rows["high"].max() and candle.low == rows["low"].min()
    assert candle.volume == pytest.approx(rows["volume"].sum(), rel=1e-12)
    assert candle.quote_volume == pytest.approx(rows["quote_volume"].sum(), rel=1e-12)
    assert candle.taker_buy_base_volume == pytest.approx(rows["taker_buy_base_volume"].sum(), rel=1e-12)
    assert candle.trades == int(rows["trades"].sum())
    first = day.candle(0)  # the data starts at 06:00: the first day holds its last 18 hours
    assert first.open_time == second - DAY and first.open == base["open"].iloc[0]
    assert first.trades == int(base[base["open_time"] < second]["trades"].sum())
    hour = market.at("BTCUSDT", "1h")
    assert hour is not None and len(hour) == len(base) // 12
    assert hour.candle(0).close_time == hour.candle(0).open_time + 3_599_999


def test_default_start_leaves_90_days_of_history() -> None:
    long = Market.generated(["BTCUSDT"], "5m", days=120)
    assert default_start(long) == long.start_ms + 91 * DAY
    short = Market.generated(["BTCUSDT"], "5m", days=8)
    assert short.start_ms < default_start(short) < short.end_ms


def test_times_on_the_command_line() -> None:
    assert parse_when("1704067200000") == 1_704_067_200_000
    assert parse_when("2024-01-01") == 1_704_067_200_000
    assert parse_when("+2d", 1_704_067_200_000) == 1_704_067_200_000 + 2 * DAY


def test_the_command_writes_archives(tmp_path: Path) -> None:
    code = cli.main(["sim", "--generate-days", "3", "--symbols", "BTCUSDT", "--interval", "1h",
                     "--regime-at", "+1d", "--write-archives", str(tmp_path)])
    assert code == 0
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["BTCUSDT-1h-2024-01.csv"]
    assert len(read_archive_csv(tmp_path / "BTCUSDT-1h-2024-01.csv")) == 72
