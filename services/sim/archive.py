"""Monthly archive files, named and formatted as data.binance.vision publishes them.

So generated data can take the same road as real archives (`candlecast import`, `sim --csv-dir`,
the model's CSV training) and a test can check the files against Binance's format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from services.sim.market import Market
from shared.market.binance_csv import write_archive_csv


def write_monthly_archives(
    market: Market, directory: Path, *, time_unit: Literal["ms", "us"] = "ms"
) -> list[Path]:
    """One `SYMBOL-INTERVAL-YYYY-MM.csv` per symbol and UTC month; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for symbol, series in sorted(market.series.items()):
        frame = series.frame()
        months = pd.to_datetime(frame["open_time"], unit="ms", utc=True).dt.strftime("%Y-%m")
        for month, rows in frame.groupby(months, sort=True):
            path = directory / f"{symbol}-{market.interval}-{month}.csv"
            written.append(write_archive_csv(path, rows, time_unit=time_unit))
    return written
