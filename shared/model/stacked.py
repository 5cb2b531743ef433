"""Several streams' windows through one model in one call: the predictor's path for a burst.

Binance closes every pair's candle at the same instant, so a predictor following N streams gets
N candles at once. Predicted one stream at a time, each costs a feature pass, a model call and
the conversion back to prices (~1.5 ms for the gradient-boosted kind, most of it fixed cost);
stacked, the N windows share each of them (400 windows: ~10 ms in all; `bench/burst_bench.py`).

Stacking is exact, not an approximation: each stream contributes only the rows its windows read
(`history_needed` rows before each end, the window plus the features' lookback), and a feature of
row t reads rows t-LOOKBACK..t only (`shared.model.features`), so a stream's rows placed after
another stream's give the same numbers, bit for bit, as the stream alone
(`tests/shared/model/test_stacked.py`). Each stream keeps its own interval levels (adaptive
conformal moves them per stream): they go in as one level per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.market.binance_csv import COLUMNS, Columns, columns_to_frame
from shared.model.forecast import NextCandle
from shared.model.forecaster import Forecaster


@dataclass(frozen=True)
class Part:
    """One stream's share of a stacked call: its candles, the positions of the candles to predict
    after (each with a full history in `columns`), and its interval levels (None: as trained)."""

    columns: Columns
    ends: np.ndarray
    levels: Mapping[float, float] | None = None


def predict_stacked(model: Forecaster, parts: Sequence[Part]) -> list[list[NextCandle]]:
    """The candle after each end of each part, in one `predict_many` call; a list per part."""
    need = model.history_needed
    pieces: list[Columns] = []
    ends: list[np.ndarray] = []
    offset = 0
    for part in parts:
        if len(part.ends) == 0:
            continue
        lo, hi = max(0, int(part.ends.min()) - need + 1), int(part.ends.max()) + 1
        pieces.append({name: part.columns[name][lo:hi] for name in COLUMNS})
        ends.append(np.asarray(part.ends, np.int64) - lo + offset)
        offset += hi - lo
    if not pieces:
        return [[] for _ in parts]
    stacked = columns_to_frame({name: np.concatenate([p[name] for p in pieces]) for name in COLUMNS})
    rows = model.predict_many(stacked, np.concatenate(ends), _levels_per_row(parts))
    result: list[list[NextCandle]] = []
    start = 0
    for part in parts:
        result.append(rows[start:start + len(part.ends)])
        start += len(part.ends)
    return result


def _levels_per_row(parts: Sequence[Part]) -> dict[float, float | np.ndarray] | None:
    """Each part's levels repeated over its rows; None when no part asks for its own."""
    nominal = sorted({level for part in parts if part.levels for level in part.levels})
    if not nominal:
        return None
    return {level: np.concatenate([np.full(len(part.ends), (part.levels or {}).get(level, level), np.float64)
                                   for part in parts]) for level in nominal}
