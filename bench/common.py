"""What the benchmarks share: the archive folder, percentiles, the table and the results file."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.config import PROJECT_ROOT

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Real Binance archives of the machine, when present (never copied into the repository).
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"


def percentiles(values: Sequence[float], quantiles: Sequence[float]) -> dict[str, float]:
    """{"p50", "p<q>" for each of `quantiles`, "max"}, rounded to 0.1 (the unit is the caller's)."""
    ordered = sorted(values)
    figures = {"p50": round(statistics.median(ordered), 1)}
    for q in quantiles:
        figures[f"p{round(q * 100)}"] = round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
    figures["max"] = round(ordered[-1], 1)
    return figures


def print_rows(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def write_result(name: str, result: dict[str, Any]) -> None:
    """`bench/results/<name>.json`, which `python -m bench` gathers into one table."""
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")
