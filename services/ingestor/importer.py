"""`candlecast import FILE...`: Binance archive files into the pipeline, the way live data goes.

Candles are published to `candles` (the recorder stores them, the predictor sees them), not
written to the database behind the pipeline's back. Every file is read and checked before
anything is published: a broken file stops the import with the file, line and rule, and
nothing half-imported is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

from shared.config import Settings, get_settings, interval_ms
from shared.market.binance_csv import CsvFormatError, frame_to_candles, read_archive_csv
from shared.market.klines import parse_archive_name
from shared.messaging import topics
from shared.messaging.events import Candle
from shared.messaging.runtime import make_producer, send_in_batches

log = logging.getLogger(__name__)



class ArchiveImportError(ValueError):
    """A file cannot be imported; the message says which and why."""


@dataclass
class ImportResult:
    files: int
    candles: int
    seconds: float


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="archive files (.csv or .zip), e.g. BTCUSDT-5m-2024-01.csv")
    parser.add_argument("--symbol", help="symbol, for files not named like Binance's archives")
    parser.add_argument("--interval", help="interval, for files not named like Binance's archives")


def load_file(path: Path, *, symbol: str | None = None, interval: str | None = None) -> list[Candle]:
    """Read and check one archive; the symbol and interval come from its name unless given."""
    named = parse_archive_name(path)
    sym = (symbol or (named[0] if named else "")).upper()
    ivl = interval or (named[1] if named else "")
    if not sym or not ivl:
        raise ArchiveImportError(f"{path}: not named like a Binance archive (SYMBOL-INTERVAL-YYYY-MM.csv); "
                           "give --symbol and --interval")
    try:
        step = interval_ms(ivl)
        frame = read_archive_csv(path)
    except (CsvFormatError, ValueError) as exc:
        raise ArchiveImportError(str(exc)) from None
    except OSError as exc:
        raise ArchiveImportError(f"{path}: {exc.strerror or exc}") from None
    # The reader checked each row's numbers; what it cannot know is the interval's grid.
    open_time, close_time = frame["open_time"].to_numpy(), frame["close_time"].to_numpy()
    off_grid = np.flatnonzero((open_time % step != 0) | (close_time != open_time + step - 1))
    if off_grid.size:
        row = int(off_grid[0])
        raise ArchiveImportError(
            f"{path}, row {row + 1}: open_time {open_time[row]} / close_time {close_time[row]} "
            f"are not a {ivl} candle ({off_grid.size} such row(s))"
        )
    return frame_to_candles(frame, sym, ivl)


async def publish_candles(producer: AIOKafkaProducer, settings: Settings, candles: Sequence[Candle]) -> None:
    """Into `candles`, keyed by symbol and in order, as record batches (`send_in_batches`)."""
    await send_in_batches(producer, settings.topic(topics.CANDLES), ((topics.symbol_key(c.symbol), c) for c in candles))


async def import_files(
    settings: Settings,
    paths: Sequence[Path],
    *,
    symbol: str | None = None,
    interval: str | None = None,
) -> ImportResult:
    """Check every file, then publish all their candles to `candles`; raises `ArchiveImportError`."""
    started = time.perf_counter()
    loaded = [load_file(p, symbol=symbol, interval=interval) for p in paths]
    producer = make_producer(settings, "import")
    await producer.start()
    try:
        for candles in loaded:
            await publish_candles(producer, settings, candles)
    finally:
        await producer.stop()
    total = sum(len(c) for c in loaded)
    return ImportResult(files=len(paths), candles=total, seconds=time.perf_counter() - started)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        result = asyncio.run(import_files(settings, args.files, symbol=args.symbol, interval=args.interval))
    except ArchiveImportError as exc:
        print(f"import failed, nothing was published: {exc}")
        return 1
    rate = result.candles / result.seconds if result.seconds else 0.0
    print(f"published {result.candles} candles from {result.files} file(s) to "
          f"{settings.topic(topics.CANDLES)} in {result.seconds:.1f}s ({rate:,.0f}/s); the recorder stores them")
    return 0
