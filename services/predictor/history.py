"""The last candles of each symbol, in memory, so a live candle is predicted without a database read.

The buffer is warmed from Postgres at start and extended by every candle consumed. A batch
whose history is not all in memory (a replay of older candles, a restart) reads the missing
part from Postgres once; that slow path is never taken by a live candle. Candles the store
turned out not to have (an exchange outage) are remembered, so they are not asked for again.

The candles are kept as plain arrays (`Columns`), not a DataFrame: a live candle is appended to
every stream's buffer at each close, and a burst of 400 streams paid ~1 ms each for the
DataFrame concat; appending to arrays costs ~0.02 ms. `frame` builds a DataFrame when one is
asked for (a backlog's batch inference, tests).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.market.binance_csv import COLUMNS, Columns, candles_to_columns, columns_to_frame, frame_columns


def _take(columns: Columns, rows: np.ndarray | slice) -> Columns:
    return {name: values[rows] for name, values in columns.items()}


class CandleHistory:
    """Candles of one symbol sorted by open time, one row per open time (the latest version wins).

    `floor`: the earliest candle there is (in the store or the stream); nothing before it is
    looked for. None: not known yet.
    """

    def __init__(self, interval_ms: int, keep: int, floor: int | None = None) -> None:
        self.interval_ms = interval_ms
        self.keep = keep
        self.floor = floor
        self.columns: Columns = candles_to_columns([])
        self._absent: set[int] = set()

    def __len__(self) -> int:
        return len(self.columns["open_time"])

    @property
    def frame(self) -> pd.DataFrame:
        return columns_to_frame(self.columns)

    @property
    def times(self) -> np.ndarray:
        return self.columns["open_time"]

    @property
    def last_time(self) -> int | None:
        return int(self.times[-1]) if len(self) else None

    def rows(self, lo: int, hi: int) -> Columns:
        """Rows [lo, hi) (views, not copies)."""
        return _take(self.columns, slice(lo, hi))

    def missing_range(self, first_time: int, rows_needed: int) -> tuple[int, int] | None:
        """[start, end) to read from the store so that `first_time` has its history; None if held."""
        start = first_time - rows_needed * self.interval_ms
        if self.floor is not None:
            start = max(start, self.floor)
        if start >= first_time:
            return None
        wanted = np.arange(start, first_time, self.interval_ms, dtype=np.int64)
        known = np.isin(wanted, self.times) | np.isin(wanted, np.fromiter(self._absent, np.int64))
        return None if known.all() else (start, first_time)

    def loaded(self, frame: pd.DataFrame, start: int, end: int) -> None:
        """Merge what the store had for [start, end); what it lacked is not asked for again."""
        self.merge(frame)
        wanted = np.arange(start, end, self.interval_ms, dtype=np.int64)
        found = frame["open_time"].to_numpy(np.int64)
        self._absent.update(int(t) for t in wanted[~np.isin(wanted, found)])

    def gap_before(self, first_time: int) -> bool:
        """Whether candles precede `first_time` here but not the one right before it."""
        times = self.times
        before = times[times < first_time]
        return len(before) > 0 and int(before[-1]) != first_time - self.interval_ms

    def merge(self, candles: pd.DataFrame | Columns) -> None:
        """Add candles; an open time seen before is replaced by the newer row."""
        new = frame_columns(candles) if isinstance(candles, pd.DataFrame) else candles
        times = new["open_time"]
        if len(times) == 0:
            return
        last = self.last_time
        merged = {name: np.concatenate([self.columns[name], new[name]]) for name in COLUMNS}
        if last is None or times[0] > last:
            if len(times) == 1 or np.all(np.diff(times) > 0):  # the live case: appended at the end
                self.columns = merged
                return
        # The last copy of each open time, in time order (a stable sort keeps the later copy last).
        order = np.argsort(merged["open_time"], kind="stable")
        ordered = merged["open_time"][order]
        keep = np.append(ordered[1:] != ordered[:-1], True)
        self.columns = _take(merged, order[keep])

    def trim(self, upto: int) -> None:
        """Keep the `keep` candles up to `upto` (where a replay goes on) and the newest `keep`."""
        n = len(self)
        if n <= self.keep:
            return
        end = int(np.searchsorted(self.times, upto, side="right"))
        rows = np.union1d(np.arange(max(0, end - self.keep), end), np.arange(n - self.keep, n))
        self.columns = _take(self.columns, rows)
        first = int(self.times[0])
        self._absent = {t for t in self._absent if t >= first}

    def positions(self, open_times: np.ndarray) -> np.ndarray:
        """Row positions of the given open times (which must be held)."""
        held = self.times
        positions = np.searchsorted(held, open_times)
        if len(positions) and (positions.max() >= len(held) or np.any(held[positions] != open_times)):
            raise KeyError("a candle is not in the history")
        result: np.ndarray = positions.astype(np.int64)
        return result
