"""`candlecast sim`: wiring only; the stand-in itself is `services.sim.server.BinanceSim`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from services.sim.archive import write_monthly_archives
from services.sim.generate import DEFAULT_START_MS, RegimeChange
from services.sim.market import Market
from services.sim.server import DAY_MS, BinanceSim
from shared.config import get_settings
from shared.market.rate_limits import WEIGHT_LIMIT
from shared.messaging.runtime import run_until_signalled

log = logging.getLogger(__name__)


def parse_when(text: str, origin_ms: int | None = None) -> int:
    """Epoch ms, an ISO date/time (UTC), or `+<days>d` after `origin_ms` (the start of the data)."""
    text = text.strip()
    if text.startswith("+") and text.endswith("d"):
        if origin_ms is None:
            raise argparse.ArgumentTypeError(f"{text!r} needs data to count from")
        return origin_ms + int(float(text[1:-1]) * DAY_MS)
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not epoch ms, an ISO time or +<days>d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    settings = get_settings()
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--csv-dir", type=Path, nargs="+",
                        help="folders of Binance archive files (SYMBOL-INTERVAL-YYYY-MM.csv); the finest interval "
                        "is the base, every coarser one is aggregated from it unless its own archives are given "
                        "(e.g. --csv-dir data data/daily)")
    source.add_argument("--csv", type=Path, nargs="+", help="archive files")
    source.add_argument("--generate-days", type=float, help="serve a generated random walk of this many days")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.sim_port)
    parser.add_argument("--speed", type=float, default=600.0, help="clock speed factor (600: a 5m candle per 0.5s)")
    parser.add_argument("--start", help="the clock's start: epoch ms, ISO time, or +<days>d into the data "
                        "(default +91d, so a 90-day backfill finds history)")
    parser.add_argument("--symbols", default=",".join(settings.symbols),
                        help="generated symbols (comma-separated), or how many: 400 makes C0001USDT..C0400USDT")
    parser.add_argument("--burst", action="store_true",
                        help="closing events only (no in-progress updates): every symbol's candle closes at the "
                             "same instant, as on Binance, and the burst is all there is")
    parser.add_argument("--weight-limit", type=int, default=WEIGHT_LIMIT,
                        help="request weight per IP a window (Binance: 6000)")
    parser.add_argument("--weight-window", type=float, default=60.0, help="seconds of the weight window (Binance: 60)")
    parser.add_argument("--symbol", help="symbol of archive files not named like Binance's")
    parser.add_argument("--interval", default=None,
                        help=f"base interval (default: the finest archive; {settings.interval} generated)")
    parser.add_argument("--seed", type=int, default=0, help="seed of generated data")
    parser.add_argument("--generate-start", default=None, help="first open time of generated data (default 2024-01-01)")
    parser.add_argument("--regime-at", help="generated data: time of a regime change (jump + volatility burst)")
    parser.add_argument("--regime-jump", type=float, default=0.08, help="log-price jump at the regime change")
    parser.add_argument("--regime-vol", type=float, default=4.0, help="volatility factor after the regime change")
    parser.add_argument("--regime-hours", type=float, default=None, help="length of the burst (default: forever)")
    parser.add_argument("--updates", type=int, default=2, help="in-progress websocket events per candle")
    parser.add_argument("--write-archives", type=Path, help="write the data as monthly archive CSVs here and exit")


def generated_symbols(text: str) -> list[str]:
    """`BTCUSDT,ETHUSDT` as given; a number N: N made-up USDT pairs (C0001USDT, C0002USDT, ...)."""
    if text.strip().isdigit():
        return [f"C{i:04d}USDT" for i in range(1, int(text) + 1)]
    return [s.strip().upper() for s in text.split(",") if s.strip()]


def build_market(args: argparse.Namespace) -> Market:
    settings = get_settings()
    interval = args.interval or settings.interval
    if args.csv_dir:
        return Market.from_csv_dir(*args.csv_dir, interval=args.interval)
    if args.csv:
        return Market.from_files(args.csv, symbol=args.symbol, interval=args.interval)
    start = parse_when(args.generate_start) if args.generate_start else DEFAULT_START_MS
    regime = None
    if args.regime_at:
        regime = RegimeChange(
            at_ms=parse_when(args.regime_at, start),
            jump=args.regime_jump,
            vol_factor=args.regime_vol,
            duration_ms=int(args.regime_hours * 3_600_000) if args.regime_hours else None,
        )
    symbols = generated_symbols(args.symbols)
    return Market.generated(symbols, interval, days=args.generate_days or 365, seed=args.seed,
                            start_ms=start, regime=regime)


async def serve(sim: BinanceSim, stop: asyncio.Event) -> None:
    await sim.start()
    try:
        await stop.wait()
    finally:
        await sim.stop()


def run(args: argparse.Namespace) -> int:
    try:
        market = build_market(args)
    except (OSError, ValueError) as exc:
        log.error("cannot load the stand-in's data: %s", exc)
        return 2
    if args.write_archives:
        paths = write_monthly_archives(market, args.write_archives)
        print(f"wrote {len(paths)} archive files to {args.write_archives}")
        return 0
    start = parse_when(args.start, market.start_ms) if args.start else None
    sim = BinanceSim(market, speed=args.speed, start_ms=start, host=args.host, port=args.port,
                     updates=0 if args.burst else args.updates, weight_limit=args.weight_limit,
                     weight_window=args.weight_window)
    asyncio.run(run_until_signalled(lambda stop: serve(sim, stop)))
    return 0
