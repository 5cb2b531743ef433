"""The last candles of each symbol, in memory, so a live candle is predicted without a database read.

The buffer is warmed from Postgres at start and extended by every candle consumed. A batch
whose history is not all in memory (a replay of older candles, a restart) reads the missing
part from Postgres once; that slow path is never taken by a live candle. Candles the store
turned out not to have (an exchange outage) are remembered, so they are not asked for again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.market.binance_csv import candles_to_frame


class CandleHistory:
    """Candles of one symbol sorted by open time, one row per open time (the latest version wins).

    `floor`: the earliest candle there is (in the store or the stream); nothing before it is
    looked for. None: not known yet.
    """

    def __init__(self, interval_ms: int, keep: int, floor: int | None = None) -> None:
        self.interval_ms = interval_ms
        self.keep = keep
        self.floor = floor
        self.frame = candles_to_frame([])
        self._absent: set[int] = set()

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def times(self) -> np.ndarray:
        result: np.ndarray = self.frame["open_time"].to_numpy(np.int64)
        return result

    @property
    def last_time(self) -> int | None:
        return int(self.frame["open_time"].iloc[-1]) if len(self.frame) else None

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

    def forget_absent(self) -> None:
        """The store may have them now (the recorder caught up)."""
        self._absent.clear()

    def gap_before(self, first_time: int) -> bool:
        """Whether candles precede `first_time` here but not the one right before it."""
        times = self.times
        before = times[times < first_time]
        return len(before) > 0 and int(before[-1]) != first_time - self.interval_ms

    def merge(self, frame: pd.DataFrame) -> None:
        """Add candles; an open time seen before is replaced by the newer row."""
        if frame.empty:
            return
        last = self.last_time
        times = frame["open_time"].to_numpy(np.int64)
        if last is not None and times[0] > last and np.all(np.diff(times) > 0):
            merged = pd.concat([self.frame, frame], ignore_index=True)  # the live case: appended at the end
        elif self.frame.empty:
            merged = frame.sort_values("open_time").drop_duplicates("open_time", keep="last")
        else:
            merged = pd.concat([self.frame, frame], ignore_index=True)
            merged = merged.drop_duplicates("open_time", keep="last").sort_values("open_time", kind="stable")
        self.frame = merged.reset_index(drop=True)

    def trim(self, upto: int) -> None:
        """Keep the `keep` candles up to `upto` (where a replay goes on) and the newest `keep`."""
        n = len(self.frame)
        if n <= self.keep:
            return
        end = int(np.searchsorted(self.times, upto, side="right"))
        rows = sorted(set(range(max(0, end - self.keep), end)) | set(range(n - self.keep, n)))
        self.frame = self.frame.iloc[rows].reset_index(drop=True)
        first = int(self.frame["open_time"].iloc[0])
        self._absent = {t for t in self._absent if t >= first}

    def positions(self, open_times: np.ndarray) -> np.ndarray:
        """Row positions of the given open times (which must be held)."""
        held = self.times
        positions = np.searchsorted(held, open_times)
        if len(positions) and (positions.max() >= len(held) or np.any(held[positions] != open_times)):
            raise KeyError("a candle is not in the history")
        result: np.ndarray = positions.astype(np.int64)
        return result
