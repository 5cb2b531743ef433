"""Human-readable metric tables, JSON-ready structures, and the leakage alarm.

The alarm exists because the usual way to "beat the market" at 5 minutes is a bug: a target
shifted by one row, a scaler fitted on the test set, a shuffled split. Published evidence puts
honest next-candle direction accuracy at a few tenths of a percent above 50% and skill against
persistence around zero; anything at or beyond 55% / +10% is treated as a leak until proven
otherwise, and said loudly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shared.model.metrics import METRIC_LABELS

ALARM_DIRECTION_ACCURACY = 0.55
ALARM_SKILL = 0.10
#: Horizons up to this length (ms) are where the thresholds are known to be out of reach.
ALARM_MAX_INTERVAL_MS = 3_600_000

_PERCENT = {"direction_accuracy", "direction_ci_low", "direction_ci_high", "close_sign_accuracy", "skill"}


def leakage_alarms(model_metrics: Mapping[str, float], interval_ms: int) -> list[str]:
    """Loud warnings when the model looks too good to be true at a short horizon."""
    if interval_ms > ALARM_MAX_INTERVAL_MS:
        return []
    minutes = interval_ms / 60_000
    alarms = []
    accuracy = model_metrics.get("direction_accuracy", math.nan)
    skill = model_metrics.get("skill", math.nan)
    if accuracy >= ALARM_DIRECTION_ACCURACY:
        alarms.append(
            f"LEAKAGE ALARM: direction accuracy {accuracy:.1%} >= {ALARM_DIRECTION_ACCURACY:.0%} on "
            f"{minutes:g}-minute candles is far beyond what is known to be possible; look for look-ahead "
            "(targets, features, scaling, split) before believing it"
        )
    if skill >= ALARM_SKILL:
        alarms.append(
            f"LEAKAGE ALARM: skill {skill:+.1%} vs persistence >= {ALARM_SKILL:+.0%} on {minutes:g}-minute "
            "candles is far beyond what is known to be possible; look for look-ahead before believing it"
        )
    return alarms


def _format(key: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "n":
        return f"{int(value):,}"
    if key in _PERCENT:
        return f"{value:+.2%}" if key == "skill" else f"{value:.2%}"
    if key.endswith("p_value"):
        return f"{value:.3g}"
    if key == "amplitude_mae":
        return f"{value:.6f}"
    if abs(value) >= 100:
        return f"{value:,.2f}"
    return f"{value:.4f}"


def metrics_table(metrics: Mapping[str, Mapping[str, float]], title: str = "") -> str:
    """One column per forecast (model first), one line per metric."""
    names = list(metrics)
    keys = [k for k in METRIC_LABELS if any(k in m for m in metrics.values())]
    label_width = max(len(METRIC_LABELS[k]) for k in keys) + 2
    cells = {n: [_format(k, metrics[n].get(k, math.nan)) for k in keys] for n in names}
    widths = {n: max(len(n), *(len(c) for c in cells[n])) + 2 for n in names}
    lines = []
    if title:
        lines.append(title)
    lines.append("".ljust(label_width) + "".join(n.rjust(widths[n]) for n in names))
    lines.append("-" * (label_width + sum(widths.values())))
    for i, key in enumerate(keys):
        lines.append(METRIC_LABELS[key].ljust(label_width) + "".join(cells[n][i].rjust(widths[n]) for n in names))
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """Nested metrics with NaN/inf turned into None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return value


def alarm_block(alarms: list[str]) -> str:
    if not alarms:
        return ""
    bar = "!" * 78
    return "\n".join([bar, *alarms, bar])
