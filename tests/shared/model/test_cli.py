from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from shared.cli import main
from shared.market.binance_csv import COLUMNS, INT_COLUMNS, write_archive_csv
from shared.model.synthetic import synthetic_candles

FAST = ["--window", "10", "--units", "4", "--epochs", "2", "--batch-size", "128"]


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("archive")
    candles = synthetic_candles(3000, phi=0.5, seed=9)
    first = write_archive_csv(folder / "ETHUSDT-5m-2023-10.csv", candles.iloc[:1500])
    second = write_archive_csv(folder / "ETHUSDT-5m-2023-11.csv", candles.iloc[1500:], time_unit="us")
    return [str(first), str(second)]


def test_train_then_evaluate(csv_files: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--csv", *csv_files, *FAST, "--model-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["symbol"] == "ETHUSDT" and out["interval"] == "5m"
    assert set(out["metrics"]) == {"model", "persistence", "mean_drift", "ema"}
    model = out["model"]
    assert Path(model).name.startswith("ETHUSDT-5m-")

    assert main(["evaluate", "--model", model, "--csv", *csv_files, "--since", "2023-10-10"]) == 0
    text = capsys.readouterr().out
    assert "close MAE" in text and "persistence" in text and "Diebold-Mariano p" in text


def test_backtest(csv_files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--csv", *csv_files, *FAST, "--folds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["folds"]) == 2 and "model" in out["pooled"]
    assert out["kind"] == "lstm"
    assert {"gross_return", "net_return", "trades", "hit_rate", "fee_per_side"} <= set(out["trading"])
    assert out["trading"]["net_return"] <= out["trading"]["gross_return"]


def test_bad_csv_row_names_the_line(csv_files: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "ETHUSDT-5m-2023-12.csv"
    lines = Path(csv_files[0]).read_text().splitlines()
    lines[6] += ",extra"
    bad.write_text("\n".join(lines) + "\n")
    assert main(["train", "--csv", str(bad), *FAST, "--no-save"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line 7" in err and "expected 12 columns" in err


def test_evaluate_refuses_a_non_model(tmp_path: Path, csv_files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", str(tmp_path), "--csv", *csv_files]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_train_from_the_database(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    candles = synthetic_candles(1500, phi=0.5, seed=10)
    records = [
        ("SYNUSDT", "5m", *(int(r[c]) if c in INT_COLUMNS else float(r[c]) for c in COLUMNS))
        for r in candles.to_dict("records")
    ]

    async def insert() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            values = ", ".join(f"${i + 1}" for i in range(len(COLUMNS) + 2))
            await conn.executemany(
                f"INSERT INTO candles (symbol, interval, {', '.join(COLUMNS)}) VALUES ({values})", records
            )
        finally:
            await conn.close()

    asyncio.run(insert())
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    argv = ["train", "--db", "--symbol", "SYNUSDT", "--days", "4", *FAST, "--model-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["symbol"] == "SYNUSDT" and out["data_end"] == int(candles["open_time"].iloc[-1])
    assert out["data_start"] == int(candles["open_time"].iloc[-4 * 288])  # exactly 4 days of candles
