"""The Grafana dashboards as data: every query, with Grafana's variables filled in for a test."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import PROJECT_ROOT

GRAFANA = PROJECT_ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROMETHEUS_CONFIG = PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    datasource: str  # the datasource uid
    text: str  # PromQL or SQL, as written in the dashboard

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel}: {self.text}"


def load(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def queries() -> list[Query]:
    found = []
    for path in DASHBOARDS:
        dashboard = load(path)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                uid = (target.get("datasource") or panel["datasource"])["uid"]
                text = target.get("expr") or target.get("rawSql")
                found.append(Query(path.stem, panel["title"], uid, text))
    return found


def promql(text: str, symbol: str = "BTCUSDT", interval: str = "5m") -> str:
    """Grafana's variables replaced as Grafana would before sending the query."""
    text = text.replace("$__rate_interval", "1m").replace("$__interval", "15s")
    text = text.replace("$symbol", symbol).replace("$interval", interval)
    assert "$" not in text, f"an unreplaced Grafana variable in: {text}"
    return text


def sql(text: str, symbol: str = "BTCUSDT", interval: str = "5m") -> str:
    text = text.replace("$__from", "0").replace("$__to", "253402300799999")
    text = text.replace("$symbol", symbol).replace("$interval", interval)
    assert "$" not in text, f"an unreplaced Grafana variable in: {text}"
    return text


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (identifiers followed by a selector or a range)."""
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[)", expr))
    bare = set(re.findall(r"\b((?:candlecast|process)_[a-zA-Z0-9_]+|up)\b(?!\s*\()", expr))
    return (names | bare) - {"by", "without", "sum", "rate", "increase", "histogram_quantile", "vector"}
