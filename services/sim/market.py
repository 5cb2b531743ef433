"""The candles the stand-in serves: per symbol, at every interval, from archive files or generated.

One base interval per market (the finest: the data's own). Every coarser Binance interval that is
a whole multiple of it is aggregated from the base exactly as Binance builds klines (`aggregate`),
and archive files of another interval (Binance's monthly 1d files, say) are served as they are,
ahead of any aggregate. Kept as numpy columns (a year of 5m candles is 105k rows per symbol);
`Candle` events are built only for the rows a request or a stream event needs. The candle still forming at the clock's
"now" is derived from the full one by `forming()`: a fraction of its volume and of its move, the
half-built kline a careless ingestor would store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from services.sim.generate import DEFAULT_START_MS, RegimeChange, generate_candles, start_price_for
from shared.config import INTERVAL_MS, interval_ms
from shared.market.binance_csv import COLUMNS, read_archive_csvs
from shared.market.klines import parse_archive_name
from shared.messaging.events import Candle


@dataclass
class Series:
    """One symbol's candles: the archive columns as arrays, sorted by open time."""

    symbol: str
    interval: str
    columns: dict[str, np.ndarray]
    first_trade_id: np.ndarray

    @classmethod
    def from_frame(cls, symbol: str, interval: str, frame: pd.DataFrame) -> Series:
        frame = frame.sort_values("open_time").drop_duplicates("open_time", keep="last")
        columns = {name: frame[name].to_numpy() for name in COLUMNS}
        trades = columns["trades"].astype(np.int64)
        # Archives carry no trade ids; number the trades consecutively, as an exchange would.
        first = 1 + np.concatenate([[0], np.cumsum(trades)[:-1]])
        return cls(symbol, interval, columns, first)

    def __len__(self) -> int:
        return len(self.columns["open_time"])

    @property
    def open_times(self) -> np.ndarray:
        return self.columns["open_time"]

    def index_of(self, open_time: int) -> int | None:
        i = int(np.searchsorted(self.open_times, open_time))
        return i if i < len(self) and int(self.open_times[i]) == open_time else None

    def window(self, lo: int, hi: int) -> tuple[int, int]:
        """Row range [i, j) of candles with lo <= open_time <= hi."""
        i = int(np.searchsorted(self.open_times, lo, side="left"))
        j = int(np.searchsorted(self.open_times, hi, side="right"))
        return i, max(i, j)

    def candle(self, i: int) -> Candle:
        c = self.columns
        trades = int(c["trades"][i])
        first = int(self.first_trade_id[i])
        return Candle(
            symbol=self.symbol,
            interval=self.interval,
            open_time=int(c["open_time"][i]),
            close_time=int(c["close_time"][i]),
            open=float(c["open"][i]),
            high=float(c["high"][i]),
            low=float(c["low"][i]),
            close=float(c["close"][i]),
            volume=float(c["volume"][i]),
            quote_volume=float(c["quote_volume"][i]),
            trades=trades,
            taker_buy_base_volume=float(c["taker_buy_base_volume"][i]),
            taker_buy_quote_volume=float(c["taker_buy_quote_volume"][i]),
            first_trade_id=first if trades else None,
            last_trade_id=first + trades - 1 if trades else None,
        )

    def forming(self, i: int, now_ms: int) -> Candle:
        """Row `i` as it looks at `now_ms` while still open: part of its move, part of its volume."""
        full = self.candle(i)
        span = full.close_time + 1 - full.open_time
        f = min(max((now_ms - full.open_time) / span, 0.0), 1.0)
        o = full.open
        close = round(o + (full.close - o) * f, 8)
        high = max(o, close, round(o + (full.high - o) * f, 8))
        low = min(o, close, round(o - (o - full.low) * f, 8))
        trades = int(full.trades * f)
        return full.model_copy(
            update={
                "close": close,
                "high": high,
                "low": low,
                "volume": full.volume * f,
                "quote_volume": full.quote_volume * f,
                "trades": trades,
                "taker_buy_base_volume": full.taker_buy_base_volume * f,
                "taker_buy_quote_volume": full.taker_buy_quote_volume * f,
                "last_trade_id": full.first_trade_id + trades - 1
                if trades and full.first_trade_id is not None
                else None,
                "first_trade_id": full.first_trade_id if trades else None,
            }
        )

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: self.columns[name] for name in COLUMNS})


def aggregate(base: Series, interval: str) -> Series:
    """`base` rolled up to `interval` as Binance does it: buckets aligned to the epoch (UTC days for
    1d), open of the first candle, close of the last, high the max, low the min, volumes and trades
    summed, close time = open time + interval - 1. A bucket the data covers only in part (its first
    or last day, an exchange outage) holds what the data has, as Binance's own klines do."""
    step = interval_ms(interval)
    c = base.columns
    bucket = (c["open_time"] // step) * step
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    ends = np.concatenate([starts[1:], [len(bucket)]]) - 1
    summed = {name: np.add.reduceat(c[name], starts) for name in
              ("volume", "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume")}
    frame = pd.DataFrame({
        "open_time": bucket[starts],
        "open": c["open"][starts],
        "high": np.maximum.reduceat(c["high"], starts),
        "low": np.minimum.reduceat(c["low"], starts),
        "close": c["close"][ends],
        "close_time": bucket[starts] + step - 1,
        **summed,
        "ignore": np.zeros(len(starts)),
    })
    return Series.from_frame(base.symbol, interval, frame[list(COLUMNS)])


class Market:
    """All symbols the stand-in knows: base series at one interval, and every interval above it.

    `extra` are series at other intervals (archive files) served as they are; a symbol in `extra`
    must also have a base series, since the clock and the live stream run on the base data.
    """

    def __init__(self, series: Iterable[Series], extra: Iterable[Series] = ()) -> None:
        self.series: dict[str, Series] = {}
        for s in series:
            if len(s) == 0:
                raise ValueError(f"no candles for {s.symbol}")
            self.series[s.symbol] = s
        if not self.series:
            raise ValueError("a market needs at least one symbol")
        intervals = {s.interval for s in self.series.values()}
        if len(intervals) != 1:
            raise ValueError(f"all symbols must share one interval, found {sorted(intervals)}")
        self.interval = intervals.pop()
        self.interval_ms = interval_ms(self.interval)
        self._at: dict[tuple[str, str], Series] = {(s.symbol, self.interval): s for s in self.series.values()}
        for s in extra:
            if s.symbol not in self.series:
                raise ValueError(f"{s.symbol} {s.interval} archives given, but no {self.interval} data for {s.symbol}")
            if s.interval != self.interval and len(s):
                self._at[(s.symbol, s.interval)] = s
        served = {name for name, ms in INTERVAL_MS.items() if ms >= self.interval_ms and ms % self.interval_ms == 0}
        served |= {ivl for _, ivl in self._at}
        self.intervals: list[str] = sorted(served, key=interval_ms)

    @property
    def symbols(self) -> list[str]:
        return sorted(self.series)

    def at(self, symbol: str, interval: str) -> Series | None:
        """`symbol`'s candles at `interval` (aggregated from the base once, then kept), or None."""
        found = self._at.get((symbol, interval))
        if found is None and interval in self.intervals and symbol in self.series:
            found = self._at[(symbol, interval)] = aggregate(self.series[symbol], interval)
        return found

    @property
    def start_ms(self) -> int:
        """Open time of the earliest candle of any symbol."""
        return min(int(s.open_times[0]) for s in self.series.values())

    @property
    def end_ms(self) -> int:
        """Close time + 1 of the latest candle: after that the stand-in has nothing new to say."""
        return max(int(s.columns["close_time"][-1]) + 1 for s in self.series.values())

    @classmethod
    def from_files(
        cls, paths: Sequence[Path], *, symbol: str | None = None, interval: str | None = None
    ) -> Market:
        """Archive files, grouped by the symbol and interval in their Binance names.

        Files not named like Binance's need `symbol` and `interval`. With several intervals present
        the finest is the base (or `interval`, if given) and the others are served as they are.
        """
        groups: dict[tuple[str, str], list[Path]] = {}
        for path in paths:
            named = parse_archive_name(path)
            if named is None and (symbol is None or interval is None):
                raise ValueError(f"{path.name} is not named like a Binance archive; give --symbol and --interval")
            sym, ivl = named if named is not None else (symbol or "", interval or "")
            if symbol is not None and named is not None and sym != symbol.upper():
                continue
            groups.setdefault((sym, ivl), []).append(path)
        if not groups:
            raise ValueError(f"no archive files match symbol={symbol}")
        base = interval or min((ivl for _, ivl in groups), key=interval_ms)
        if base not in {ivl for _, ivl in groups}:
            raise ValueError(f"no {base} archive files among {sorted({ivl for _, ivl in groups})}")
        loaded = [Series.from_frame(sym, ivl, read_archive_csvs(sorted(files))) for (sym, ivl), files in groups.items()]
        return cls([s for s in loaded if s.interval == base], extra=[s for s in loaded if s.interval != base])

    @classmethod
    def from_csv_dir(cls, *directories: Path, interval: str | None = None) -> Market:
        """Every Binance-named archive in these folders (5m files in one, 1d files in another)."""
        files = []
        for directory in directories:
            found = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".csv", ".zip"))
            files += [p for p in found if parse_archive_name(p) is not None]
        if not files:
            names = ", ".join(str(d) for d in directories)
            raise ValueError(f"no Binance archive files (SYMBOL-INTERVAL-YYYY-MM.csv) in {names}")
        return cls.from_files(files, interval=interval)

    @classmethod
    def generated(
        cls,
        symbols: Sequence[str],
        interval: str,
        *,
        days: float,
        seed: int = 0,
        start_ms: int = DEFAULT_START_MS,
        regime: RegimeChange | None = None,
    ) -> Market:
        """Seeded random walks, one per symbol (seed + its position), all on the same clock."""
        step = interval_ms(interval)
        n = max(1, int(days * 86_400_000 // step))
        return cls(
            Series.from_frame(
                sym.upper(),
                interval,
                generate_candles(
                    n,
                    interval_ms=step,
                    start_ms=start_ms,
                    start_price=start_price_for(sym, i),
                    seed=seed + i,
                    regime=regime,
                ),
            )
            for i, sym in enumerate(symbols)
        )
