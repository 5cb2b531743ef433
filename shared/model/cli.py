"""`candlecast train | evaluate | backtest`: the model from the command line.

    candlecast train --csv data/BTCUSDT-5m-2024-*.csv [--days 135 --test-days 45] [--json]
    candlecast train --db [--symbol BTCUSDT --interval 5m --days 90]
    candlecast evaluate --model .data/models/BTCUSDT-5m-20261123T142900Z --csv FILES... [--since 2024-08-01]
    candlecast backtest --csv FILES... --folds 4 [--train-days 90]

Metrics print as a table beside the three baselines (or as JSON with `--json`, on stdout, while
the progress bar and logs go to stderr), with the leakage alarm when the numbers are too good.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shared.config import Settings, interval_ms
from shared.model.forecaster import DEFAULT_KIND, KINDS
from shared.model.sources import csv_identity, last_days, load_csv, load_db

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Options of `name` (train, evaluate or backtest)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", nargs="+", type=Path, metavar="FILE", help="Binance archive CSV (or .zip) files")
    source.add_argument("--db", action="store_true", help="read candles from the database (CANDLECAST_DATABASE_URL)")
    parser.add_argument("--symbol", help="symbol (default: from the CSV file names, else the first configured)")
    parser.add_argument("--interval", help="interval (default: from the CSV file names, else the configured one)")
    parser.add_argument("--days", type=float, help="use only the last DAYS days of candles")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    if name in ("train", "backtest"):
        parser.add_argument("--kind", default=DEFAULT_KIND, choices=(*KINDS, "all"),
                            help=f"model kind (default {DEFAULT_KIND}; all: each kind on the same data)")
    if name == "evaluate":
        parser.add_argument("--model", type=Path, required=True, help="a model version folder")
        parser.add_argument("--since", help="evaluate only candles from this date (YYYY-MM-DD) or epoch ms on")
        return
    model = parser.add_argument_group("model")
    model.add_argument("--window", type=int, help="candles per input window (default: CANDLECAST_WINDOW)")
    model.add_argument("--layers", type=int, default=1, choices=(1, 2))
    model.add_argument("--units", type=int, default=32)
    model.add_argument("--dropout", type=float, default=0.0)
    model.add_argument("--epochs", type=int, default=30, help="maximum epochs (early stopping usually ends sooner)")
    model.add_argument("--batch-size", type=int, default=256)
    model.add_argument("--learning-rate", type=float, default=1e-3)
    model.add_argument("--patience", type=int, default=4)
    model.add_argument("--cls-weight", type=float, default=0.3, help="weight of the p_up loss")
    model.add_argument("--monitor", choices=("all", "close"), default="all", help="early-stopping metric")
    model.add_argument("--ensemble", type=int, default=1, help="networks averaged (seeds seed, seed+1, ...)")
    model.add_argument("--no-calibration", action="store_true", help="skip the close shrink and p_up calibration")
    model.add_argument("--seed", type=int, default=42)
    if name == "train":
        parser.add_argument("--test-days", type=float, help="test on the last DAYS days (default: the last 15%%)")
        parser.add_argument("--model-dir", type=Path, help="where to save (default: CANDLECAST_MODEL_DIR)")
        parser.add_argument("--no-save", action="store_true", help="evaluate only, do not save the model")
    else:
        parser.add_argument("--folds", type=int, default=4, help="number of rolling-origin folds")
        parser.add_argument("--test-fraction", type=float, default=0.3, help="share of samples tested across folds")
        parser.add_argument("--train-days", type=float, help="train each fold on at most the last DAYS days")
        parser.add_argument("--long-above", type=float, default=0.55, help="trading: long when p_up is above")
        parser.add_argument("--short-below", type=float, default=0.45, help="trading: short when p_up is below")
        parser.add_argument("--fee", type=float, default=0.001, help="trading: fee per side (Binance taker 0.1%%)")
        parser.add_argument("--report", type=Path, metavar="FILE.html", help="also write a page of plots here")


def _identity(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    named_symbol, named_interval = csv_identity(args.csv) if args.csv else (None, None)
    symbol = (args.symbol or named_symbol or settings.symbols[0]).upper()
    interval = args.interval or named_interval or settings.interval
    interval_ms(interval)  # validates
    return symbol, interval


def _candles(args: argparse.Namespace, settings: Settings, symbol: str, interval: str) -> pd.DataFrame:
    if args.csv:
        candles = last_days(load_csv(args.csv), args.days)
    else:
        days = args.days if args.days is not None else settings.train_days
        candles = load_db(settings.database, symbol, interval, days)
    if candles.empty:
        raise SystemExit(f"no candles for {symbol} {interval}")
    log.info(
        "%d candles %s .. %s", len(candles), _iso(candles["open_time"].iloc[0]), _iso(candles["open_time"].iloc[-1])
    )
    return candles


def _iso(ms: Any) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _train_config(args: argparse.Namespace, settings: Settings, interval: str, test_rows: int | None = None) -> Any:
    from shared.model.training import TrainConfig

    return TrainConfig(
        window=args.window or settings.window,
        layers=args.layers,
        units=args.units,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        cls_weight=args.cls_weight,
        monitor=args.monitor,
        seed=args.seed,
        ensemble=args.ensemble,
        shrink_close=not args.no_calibration,
        calibrate_p_up=not args.no_calibration,
        test_rows=test_rows,
        interval_ms=interval_ms(interval),
    )


class _Bar:
    """A tqdm progress bar over epochs, on stderr."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=desc, unit="epoch", file=sys.stderr, leave=True)

    def __call__(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _print(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    from shared.model.report import jsonable

    if args.json:
        print(json.dumps(jsonable(payload), indent=1))
    else:
        print(text)


def _kinds(args: argparse.Namespace) -> list[str]:
    return list(KINDS) if args.kind == "all" else [args.kind]


def _train(args: argparse.Namespace, settings: Settings) -> int:
    symbol, interval = _identity(args, settings)
    candles = _candles(args, settings, symbol, interval)
    test_rows = int(args.test_days * 86_400_000 / interval_ms(interval)) if args.test_days else None
    config = _train_config(args, settings, interval, test_rows)
    payloads, texts = [], []
    for kind in _kinds(args):
        payload, text = _train_one(args, settings, kind, symbol, interval, candles, config)
        payloads.append(payload)
        texts.append(text)
    _print(args, payloads[0] if len(payloads) == 1 else {"results": payloads}, "\n\n".join(texts))
    return 0


def _train_one(
    args: argparse.Namespace, settings: Settings, kind: str, symbol: str, interval: str, candles: pd.DataFrame,
    config: Any,
) -> tuple[dict[str, Any], str]:
    from shared.model.report import alarm_block, metrics_table
    from shared.model.training import train

    bar = _Bar(f"training {kind} {symbol} {interval}")
    try:
        result = train(kind, candles, config, bar)
    finally:
        bar.close()
    path = None
    if not args.no_save:
        from shared.model.artifacts import save_model

        path = save_model(result, args.model_dir or settings.model_dir, symbol, interval)
    metrics = {"model": result.metrics, **result.baseline_metrics} if result.metrics else {}
    lines = [
        f"{kind} {symbol} {interval}: data {_iso(result.data_start)} .. {_iso(result.data_end)}, "
        f"samples {result.split_sizes}, best epoch {result.best_epoch}, {result.train_seconds:.0f} s",
    ]
    if result.test_start is not None:
        lines += ["", metrics_table(metrics, f"test part: candles from {_iso(result.test_start)} on")]
    if result.alarms:
        lines += ["", alarm_block(result.alarms)]
    lines += ["", f"saved: {path}" if path else "not saved (--no-save)"]
    payload = {
        "kind": kind,
        "symbol": symbol,
        "interval": interval,
        "model": str(path) if path else None,
        "data_start": result.data_start,
        "data_end": result.data_end,
        "test_start": result.test_start,
        "split_sizes": result.split_sizes,
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "metrics": result.evaluation.metrics_with_horizons() if result.evaluation else metrics,
        "alarms": result.alarms,
    }
    return payload, "\n".join(lines)


def _since_ms(text: str | None) -> int | None:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from shared.model.artifacts import load_model
    from shared.model.evaluation import evaluate
    from shared.model.report import alarm_block, metrics_table

    model = load_model(args.model)
    symbol = args.symbol or model.metadata.get("symbol") or settings.symbols[0]
    interval = args.interval or model.metadata.get("interval") or settings.interval
    candles = _candles(args, settings, symbol, interval)
    evaluation = evaluate(model, candles, since_ms=_since_ms(args.since))
    first, last = evaluation.base_times[[0, -1]] + model.interval_ms  # the predicted candles
    title = f"{model.version}: {len(evaluation.end_indices):,} predicted candles, {_iso(first)} .. {_iso(last)}"
    text = metrics_table(evaluation.metrics, title)
    if evaluation.alarms:
        text += "\n\n" + alarm_block(evaluation.alarms)
    payload = {"model": model.version, "kind": model.kind, "metrics": evaluation.metrics_with_horizons(),
               "alarms": evaluation.alarms}
    _print(args, payload, text)
    return 0


def _backtest(args: argparse.Namespace, settings: Settings) -> int:
    symbol, interval = _identity(args, settings)
    candles = _candles(args, settings, symbol, interval)
    payloads, texts, results = [], [], {}
    for kind in _kinds(args):
        payload, text, results[kind] = _backtest_one(args, settings, kind, symbol, interval, candles)
        payloads.append(payload)
        texts.append(text)
    if args.report:
        from shared.model.report_html import backtest_page

        args.report.write_text(backtest_page(f"walk-forward backtest, {symbol} {interval}", results))
        texts.append(f"report: {args.report}")
    _print(args, payloads[0] if len(payloads) == 1 else {"results": payloads}, "\n\n".join(texts))
    return 0


def _backtest_one(
    args: argparse.Namespace, settings: Settings, kind: str, symbol: str, interval: str, candles: pd.DataFrame
) -> tuple[dict[str, Any], str, Any]:
    from shared.model.backtest import fold_summary, walk_forward
    from shared.model.report import alarm_block, metrics_table
    from shared.model.trading import Strategy

    config = _train_config(args, settings, interval)
    train_rows = int(args.train_days * 86_400_000 / interval_ms(interval)) if args.train_days else None
    bar = _Bar(f"backtest {kind} {symbol} {interval}")

    current = [0]

    def progress(fold: int, folds: int, epoch: int, epochs: int) -> None:
        if fold != current[0]:  # a new bar (and rate) per fold
            current[0] = fold
            bar.bar.reset(total=epochs)
            bar.bar.set_description(f"backtest fold {fold}/{folds}")
        bar(epoch, epochs)

    try:
        result = walk_forward(
            candles, config, args.folds, test_fraction=args.test_fraction, train_rows=train_rows, progress=progress,
            kind=kind,
        )
    finally:
        bar.close()
    folds = fold_summary(result)
    lines = [f"{kind}:",
             "fold  test period                          rows   model MAE  persist. MAE    skill  DM p     dir. acc"]
    for f in folds:
        lines.append(
            f"{f['fold']:>4}  {_iso(f['test_start'])} .. {_iso(f['test_end'])}  {f['test_rows']:>6}  "
            f"{f['close_mae']:>10.4f}  {f['persistence_close_mae']:>12.4f}  {f['skill']:>+7.2%}  "
            f"{f['dm_p_value']:<7.3g}  {f['direction_accuracy']:.2%}"
        )
    lines += ["", metrics_table(result.pooled.metrics, f"all {len(folds)} folds pooled")]
    trading = result.pooled.trading(Strategy(args.long_above, args.short_below, args.fee))
    lines += ["", f"trading p_up (long > {args.long_above}, short < {args.short_below}, fee {args.fee:.2%} per side): "
              f"{trading['trades']:.0f} trades, in the market {trading['exposure']:.1%} of the time, hit rate "
              f"{trading['hit_rate']:.1%}; gross {trading['gross_return']:+.2%}, net {trading['net_return']:+.2%} "
              f"(buy and hold {trading['buy_and_hold_return']:+.2%})"]
    if result.alarms:
        lines += ["", alarm_block(result.alarms)]
    payload = {
        "kind": kind,
        "symbol": symbol,
        "interval": interval,
        "folds": folds,
        "pooled": result.pooled.metrics_with_horizons(),
        "trading": trading,
        "alarms": result.alarms,
    }
    return payload, "\n".join(lines), result


def run(args: argparse.Namespace) -> int:
    from shared.market.binance_csv import CsvFormatError
    from shared.model.artifacts import ArtifactError

    settings = Settings()
    handlers = {"train": _train, "evaluate": _evaluate, "backtest": _backtest}
    try:
        return handlers[args.command](args, settings)
    except (CsvFormatError, ArtifactError, FileNotFoundError, ValueError) as exc:
        print(f"candlecast {args.command}: {exc}", file=sys.stderr)
        return 2
