from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.market.binance_csv import (
    COLUMNS,
    CsvFormatError,
    candles_to_frame,
    frame_to_candles,
    parse_archive_csv,
    read_archive_csv,
    read_archive_csvs,
    write_archive_csv,
)
from shared.messaging.events import Candle
from shared.model.synthetic import synthetic_candles

# Two rows in Binance's archive layout (values made up): ms times, 8 decimals, trailing 0.
MS_ROWS = (
    "1704067200000,42283.58000000,42298.62000000,42261.02000000,42298.61000000,35.92724000,"
    "1704067499999,1519032.71481290,1374,21.84683000,923707.66389310,0\n"
    "1704067500000,42298.62000000,42320.00000000,42298.61000000,42318.00000000,29.78991000,"
    "1704067799999,1260328.38893360,1149,19.51893000,825818.44808760,0\n"
)
# The same two candles as Binance's 2025+ spot archives write them: microsecond times.
US_ROWS = (
    MS_ROWS.replace("1704067200000,", "1704067200000000,")
    .replace(",1704067499999,", ",1704067499999999,")
    .replace("1704067500000,", "1704067500000000,")
    .replace(",1704067799999,", ",1704067799999999,")
)


def test_parses_the_archive_format(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-5m-2024-01.csv"
    path.write_text(MS_ROWS)
    frame = read_archive_csv(path)
    assert list(frame.columns) == list(COLUMNS)
    assert frame["open_time"].tolist() == [1704067200000, 1704067500000]
    assert frame["close_time"].tolist() == [1704067499999, 1704067799999]
    assert frame["trades"].tolist() == [1374, 1149]
    assert frame["open_time"].dtype == np.int64 and frame["trades"].dtype == np.int64
    assert frame["close"].dtype == np.float64
    assert frame.loc[0, "taker_buy_quote_volume"] == pytest.approx(923707.66389310)


def test_microsecond_times_become_milliseconds() -> None:
    assert parse_archive_csv(US_ROWS).equals(parse_archive_csv(MS_ROWS))


def test_header_row_is_tolerated() -> None:
    header = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore\n"
    )
    assert parse_archive_csv(header + MS_ROWS).equals(parse_archive_csv(MS_ROWS))


def test_zip_as_downloaded(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-5m-2024-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-5m-2024-01.csv", MS_ROWS)
    assert read_archive_csv(path).equals(parse_archive_csv(MS_ROWS))


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        ("1704067800000,1,2,0.5,1.5,3,1704068099999,4,5,1,2", "expected 12 columns, found 11"),
        ("1704067800000,1,2,0.5,abc,3,1704068099999,4,5,1,2,0", "close is not a number"),
        ("1704067800000,1,2,0.5,1.5,3,1704068099999,4,5.5,1,2,0", "trades is not an integer"),
        ("1704067800000,1,0.4,0.5,0.45,3,1704068099999,4,5,1,2,0", "high is below low"),
        ("1704067800000,1,2,0.5,1.5,-3,1704068099999,4,5,1,2,0", "must not be negative"),
        ("1704067800000,1,2,0.5,nan,3,1704068099999,4,5,1,2,0", "close is not finite"),
        ("1704067800000,1,2,0.5,2.5,3,1704068099999,4,5,1,2,0", "between low and high"),
        ("1704067800000,0,2,0,1.5,3,1704068099999,4,5,1,2,0", "prices must be positive"),
    ],
)
def test_bad_row_names_file_line_and_rule(tmp_path: Path, row: str, rule: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(MS_ROWS + row + "\n")
    with pytest.raises(CsvFormatError) as caught:
        read_archive_csv(path)
    message = str(caught.value)
    assert str(path) in message and "line 3" in message and rule in message
    assert caught.value.line == 3


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    frame = synthetic_candles(50, seed=2)
    path = write_archive_csv(tmp_path / "x.csv", frame)
    first = path.read_text().splitlines()[0].split(",")
    assert len(first) == 12 and first[-1] == "0" and first[1].split(".")[1].__len__() == 8
    back = read_archive_csv(path)
    pd.testing.assert_frame_equal(back, frame, check_exact=False, rtol=0, atol=1e-8)


def test_writer_microseconds_round_trip(tmp_path: Path) -> None:
    frame = synthetic_candles(5, seed=2)
    path = write_archive_csv(tmp_path / "x.csv", frame, time_unit="us")
    assert path.read_text().split(",")[0] == str(int(frame["open_time"].iloc[0]) * 1000)
    assert read_archive_csv(path)["close_time"].tolist() == frame["close_time"].tolist()


def test_many_files_sorted_and_deduplicated(tmp_path: Path) -> None:
    frame = synthetic_candles(30, seed=4)
    a = write_archive_csv(tmp_path / "a.csv", frame.iloc[10:])
    b = write_archive_csv(tmp_path / "b.csv", frame.iloc[:15])  # overlaps a by 5 candles
    merged = read_archive_csvs([a, b])
    assert merged["open_time"].tolist() == frame["open_time"].tolist()


def test_candles_conversion_both_ways(tmp_path: Path) -> None:
    frame = synthetic_candles(10, seed=5)
    candles = frame_to_candles(frame, "BTCUSDT", "5m")
    assert all(isinstance(c, Candle) for c in candles) and candles[0].symbol == "BTCUSDT"
    pd.testing.assert_frame_equal(candles_to_frame(candles), frame)
    path = write_archive_csv(tmp_path / "c.csv", candles)
    assert math.isclose(read_archive_csv(path)["close"].iloc[-1], candles[-1].close)


def test_blank_lines_are_skipped_and_lines_still_counted() -> None:
    text = MS_ROWS.replace("\n", "\n\n", 1) + "1,2\n"
    with pytest.raises(CsvFormatError, match="line 4"):
        parse_archive_csv(text, "upload.csv")
