"""`candlecast import`: archive files through Kafka into Postgres; a broken file publishes nothing."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import numpy as np
import pytest

from services.ingestor.importer import ArchiveImportError, import_files
from services.sim import Market
from services.sim.archive import write_monthly_archives
from shared import cli
from shared.config import Settings, get_settings
from shared.messaging import topics
from testkit.kafka import read_topic
from testkit.waiting import eventually
from tests.services.ingestor.support import running_ingestor, stored_count

JAN_20 = 1_705_708_800_000  # 2024-01-20T00:00:00Z


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.generated(["BTCUSDT"], "5m", days=20, seed=5, start_ms=JAN_20)  # spans two months


async def test_archives_the_stand_in_wrote_are_imported_and_recorded(
    settings: Settings, db: asyncpg.Connection, market: Market, tmp_path: Path
) -> None:
    paths = write_monthly_archives(market, tmp_path)
    assert [p.name for p in paths] == ["BTCUSDT-5m-2024-01.csv", "BTCUSDT-5m-2024-02.csv"]
    n = len(market.series["BTCUSDT"])
    result = await import_files(settings, paths)
    assert (result.files, result.candles) == (2, n)
    async with running_ingestor(settings, ingest=False) as task:

        async def all_stored() -> bool:
            return await stored_count(db) == n

        await eventually(all_stored, f"{n} rows", task=task)
    rows = await db.fetch("SELECT open_time, close, volume FROM candles ORDER BY open_time")
    columns = market.series["BTCUSDT"].columns
    assert [r["open_time"] for r in rows] == columns["open_time"].tolist()
    assert np.allclose([r["close"] for r in rows], columns["close"])
    assert np.allclose([r["volume"] for r in rows], columns["volume"])


async def test_a_broken_file_is_refused_by_line_and_nothing_is_published(
    settings: Settings, market: Market, tmp_path: Path
) -> None:
    good, bad = write_monthly_archives(market, tmp_path)
    lines = bad.read_text().splitlines()
    fields = lines[2].split(",")
    fields[2], fields[3] = fields[3], fields[2]  # high below low
    lines[2] = ",".join(fields)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArchiveImportError, match=r"BTCUSDT-5m-2024-02\.csv, line 3: high is below low"):
        await import_files(settings, [good, bad])
    assert await read_topic(settings, topics.CANDLES) == []


async def test_off_grid_times_are_refused(settings: Settings, market: Market, tmp_path: Path) -> None:
    path = write_monthly_archives(market, tmp_path)[0]
    lines = path.read_text().splitlines()
    fields = lines[4].split(",")
    fields[0], fields[6] = str(int(fields[0]) + 1000), str(int(fields[6]) + 1000)
    lines[4] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArchiveImportError, match=r"row 5: .* are not a 5m candle"):
        await import_files(settings, [path])


def test_the_command_reports_counts_or_the_error(
    settings: Settings, market: Market, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_monthly_archives(market, tmp_path)[0]
    unnamed = tmp_path / "prices.csv"
    unnamed.write_text(good.read_text())
    monkeypatch.setenv("CANDLECAST_KAFKA_BOOTSTRAP", settings.kafka)
    monkeypatch.setenv("CANDLECAST_TOPIC_PREFIX", settings.topic_prefix)
    get_settings.cache_clear()
    try:
        assert cli.main(["import", str(unnamed)]) == 1
        assert "not named like a Binance archive" in capsys.readouterr().out
        assert cli.main(["import", str(unnamed), "--symbol", "BTCUSDT", "--interval", "5m"]) == 0
        assert f"published {len(good.read_text().splitlines())} candles" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
