from __future__ import annotations

import pytest

from shared.model.sources import archive_name_parts, csv_identity, last_days
from shared.model.synthetic import synthetic_candles


def test_archive_names() -> None:
    assert archive_name_parts("/x/BTCUSDT-5m-2024-01.csv") == ("BTCUSDT", "5m")
    assert archive_name_parts("ETHUSDT-1h-2025-03-15.zip") == ("ETHUSDT", "1h")
    assert archive_name_parts("candles.csv") is None
    assert csv_identity(["BTCUSDT-5m-2024-01.csv", "BTCUSDT-5m-2024-02.csv"]) == ("BTCUSDT", "5m")
    assert csv_identity(["a.csv"]) == (None, None)
    with pytest.raises(ValueError, match="mix"):
        csv_identity(["BTCUSDT-5m-2024-01.csv", "ETHUSDT-5m-2024-01.csv"])


def test_last_days() -> None:
    candles = synthetic_candles(2 * 288 + 10)
    assert len(last_days(candles, 1)) == 288
    assert len(last_days(candles, None)) == len(candles)
