"""The data invariant every fault test checks: nothing lost, nothing doubled.

For one symbol and time range: candles are contiguous (one per interval, no hole) and unique,
and every candle after the first W has exactly one `futures` row (one prediction, made before it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg


@dataclass
class InvariantReport:
    candles: int = 0
    missing_candles: list[int] = field(default_factory=list)
    duplicate_candles: list[int] = field(default_factory=list)
    futures_expected: int = 0
    missing_futures: list[int] = field(default_factory=list)
    duplicate_futures: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_candles or self.duplicate_candles or self.missing_futures or self.duplicate_futures)

    def __str__(self) -> str:
        def few(xs: list[int]) -> str:
            return ", ".join(map(str, xs[:5])) + (" …" if len(xs) > 5 else "")

        parts = [f"{self.candles} candles"]
        for name in ("missing_candles", "duplicate_candles", "missing_futures", "duplicate_futures"):
            values: list[int] = getattr(self, name)
            if values:
                parts.append(f"{len(values)} {name.replace('_', ' ')} ({few(values)})")
        return "; ".join(parts)


async def check_invariants(
    conn: asyncpg.Connection,
    symbol: str,
    interval: str,
    interval_ms: int,
    start: int,
    end: int,
    window: int | None = None,
) -> InvariantReport:
    """Check candles in [start, end] (open times, ms); with `window`, the futures rows too."""
    report = InvariantReport()
    times = [
        r["open_time"]
        for r in await conn.fetch(
            "SELECT open_time FROM candles WHERE symbol=$1 AND interval=$2 AND open_time BETWEEN $3 AND $4"
            " ORDER BY open_time",
            symbol, interval, start, end,
        )
    ]
    report.candles = len(times)
    seen: set[int] = set()
    for t in times:
        if t in seen:
            report.duplicate_candles.append(t)
        seen.add(t)
    expected = list(range(start, end + 1, interval_ms))
    report.missing_candles = [t for t in expected if t not in seen]
    if window is None:
        return report

    counts: dict[int, int] = {
        r["time"]: r["n"]
        for r in await conn.fetch(
            "SELECT time, count(*) AS n FROM futures WHERE symbol=$1 AND interval=$2 AND time BETWEEN $3 AND $4"
            " GROUP BY time",
            symbol, interval, start, end,
        )
    }
    predicted = sorted(seen)[window:]
    report.futures_expected = len(predicted)
    report.missing_futures = [t for t in predicted if counts.get(t, 0) == 0]
    report.duplicate_futures = [t for t, n in sorted(counts.items()) if n > 1]
    return report
