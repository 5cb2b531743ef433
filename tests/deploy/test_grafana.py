"""Grafana provisioning: the datasources and dashboards parse and agree with each other, and
every SQL query of the Market dashboard runs, as the read-only role, on seeded rows."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import yaml

from shared.config import Settings
from tests.deploy.dashboards import DASHBOARDS, GRAFANA, load, queries, sql
from tests.services.gateway.seed import seed


def datasources() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    return {d["uid"]: d for d in config["datasources"]}


def test_provisioning_files_parse_and_name_the_dashboards_folder() -> None:
    sources = datasources()
    assert set(sources) == {"prometheus", "postgres"}
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    assert sources["postgres"]["user"] == "candlecast_reader"  # the read-only role
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert {p.stem for p in DASHBOARDS} == {"operations", "model", "market"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_well_formed(path: Any) -> None:
    dashboard = load(path)
    sources = datasources()
    assert dashboard["uid"].startswith("candlecast-") and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and 4 <= len(ids) <= 12
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in sources, panel["title"]
        assert panel["datasource"]["type"] == sources[panel["datasource"]["uid"]]["type"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for target in panel["targets"]:
            assert target.get("expr") or target.get("rawSql"), panel["title"]
    used = {v["name"] for v in dashboard["templating"]["list"]}
    text = path.read_text()
    for name in ("symbol", "interval"):
        if f"${name}" in text:
            assert name in used, f"${name} used but not defined in {path.name}"


async def test_market_sql_runs_as_the_reader_and_returns_rows(database_url: str, db: asyncpg.Connection) -> None:
    await seed(db)
    reader = await asyncpg.connect(Settings(database_url=database_url).database_readonly)
    try:
        sql_queries = [q for q in queries() if q.datasource == "postgres"]
        assert len(sql_queries) >= 4
        for query in sql_queries:
            rows = await reader.fetch(sql(query.text))
            assert rows, f"no rows for {query}"
    finally:
        await reader.close()
