"""What a test can make the stand-in do wrong: rate limits, malformed klines, dropped connections.

Binance does all of these to a real client sooner or later; the stand-in does them on command so
the ingestor's handling of each one is tested, not hoped for.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Each kind breaks one rule the ingestor checks (see shared.market.klines).
MALFORMED_KINDS = ("high_low", "nan", "negative_volume", "unknown_symbol", "misaligned", "not_json")


@dataclass
class Faults:
    rate_limited: int = 0
    retry_after: int = 1
    status: int = 429
    malformed: deque[str] = field(default_factory=deque)
    served_rate_limits: int = 0

    def take_rate_limit(self) -> tuple[int, int] | None:
        """(status, Retry-After seconds) if this request is to be refused."""
        if self.rate_limited <= 0:
            return None
        self.rate_limited -= 1
        self.served_rate_limits += 1
        return self.status, self.retry_after

    def add_malformed(self, kind: str, count: int) -> None:
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {', '.join(MALFORMED_KINDS)}")
        self.malformed.extend([kind] * count)


def corrupt(event: dict[str, Any], kind: str, step_ms: int) -> dict[str, Any] | str:
    """A closing kline event broken in the way `kind` names (a copy; the real one still follows)."""
    if kind == "not_json":
        return '{"e": "kline", "k": {'
    bad = copy.deepcopy(event)
    k = bad["k"]
    if kind == "high_low":
        k["h"], k["l"] = k["l"], k["h"]
        if k["h"] == k["l"]:
            k["h"] = f"{float(k['l']) - 1:.8f}"
    elif kind == "nan":
        k["c"] = "NaN"
    elif kind == "negative_volume":
        k["v"] = "-1.00000000"
    elif kind == "unknown_symbol":
        bad["s"] = k["s"] = "NOSUCHCOIN"
    elif kind == "misaligned":
        k["t"] += step_ms // 3
        k["T"] += step_ms // 3
    return bad
