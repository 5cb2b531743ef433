"""Model benchmark: training time, one-window latency (fast path vs `model.predict`), batch rate.

    .venv/bin/python -m bench.model_bench                 # generated candles
    .venv/bin/python -m bench.model_bench --csv FILES...  # real Binance archive CSVs

Trains on 90 days of 5-minute candles (25,920) with the default `TrainConfig`, then times
predictions, prints a table and writes `bench/results/model.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from shared.market.binance_csv import read_archive_csvs
from shared.model._tf import library_versions
from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig, train_model

RESULTS = Path(__file__).resolve().parent / "results" / "model.json"
CANDLES_90_DAYS = 90 * 288


def _timed(fn: Callable[[], Any], repeats: int, warmup: int = 5) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(0.99 * len(samples)))],
        "mean_ms": statistics.fmean(samples),
        "calls": repeats,
    }


def run(csv: list[Path] | None, epochs: int, repeats: int, batch: int) -> dict[str, Any]:
    if csv:
        candles = read_archive_csvs(csv).iloc[-CANDLES_90_DAYS:].reset_index(drop=True)
        source = f"{len(csv)} CSV files, last 90 days"
    else:
        candles = synthetic_candles(CANDLES_90_DAYS, phi=0.1, seed=1)
        source = "generated AR(1) candles"
    config = TrainConfig(epochs=epochs)
    started = time.perf_counter()
    result = train_model(candles, config)
    train_seconds = time.perf_counter() - started
    epochs_run = len(result.history)
    model = result.model
    tail = candles.iloc[-model.history_needed :].reset_index(drop=True)
    window = model.windows(tail, [len(tail) - 1])

    # The NumPy paths are timed before any Keras call: TensorFlow's thread pool keeps spinning
    # for a while after `predict`, and on 2 cores that would be measured as NumPy's slowness.
    ends = np.arange(len(candles) - batch - 1, len(candles) - 1)
    model.predict_many(candles, ends[:100])
    start = time.perf_counter()
    model.predict_many(candles, ends)
    fast_batch = time.perf_counter() - start
    latency = {
        "predict_next (features + NumPy forward)": _timed(lambda: model.predict_next(tail), repeats),
        "NumPy forward only": _timed(lambda: model.raw_outputs(window), repeats),
        "keras model(x) direct call": _timed(lambda: model.keras_model(window, training=False), repeats // 5),
        "keras model.predict": _timed(lambda: model.keras_model.predict(window, verbose=0), repeats // 5),
    }
    windows = model.windows(candles, ends)
    start = time.perf_counter()
    model.keras_model.predict(windows, batch_size=1024, verbose=0)
    keras_batch = time.perf_counter() - start

    return {
        "kinds": kinds_report(candles, repeats),
        "source": source,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **library_versions()},
        "training": {
            "candles": len(candles),
            "samples": result.split_sizes,
            "config": config.to_dict(),
            "seconds": train_seconds,
            "epochs_run": epochs_run,
            "best_epoch": result.best_epoch,
            "seconds_per_epoch": train_seconds / max(epochs_run, 1),
        },
        "latency_one_window": latency,
        "batch": {
            "windows": batch,
            "predict_many_windows_per_s": batch / fast_batch,
            "keras_predict_windows_per_s_excluding_features": batch / keras_batch,
        },
        "test_metrics": {"model": result.metrics, "persistence": result.baseline_metrics.get("persistence", {})},
    }


def kinds_report(candles: Any, repeats: int) -> dict[str, Any]:
    """The tabular kinds on the same 90 days: training time, and one window through the full path
    (features + model) beside the model's own forward pass alone (the floor)."""
    from shared.model.training import train

    report = {}
    for kind in ("gbm", "linear"):
        started = time.perf_counter()
        result = train(kind, candles, TrainConfig())
        seconds = time.perf_counter() - started
        model = result.model
        tail = candles.iloc[-model.history_needed :].reset_index(drop=True)
        inputs = model.inputs(tail, np.array([len(tail) - 1]))
        full = _timed(lambda m=model, t=tail: m.predict_next(t), repeats)
        floor = _timed(lambda m=model, x=inputs: m.raw_outputs(x), repeats)
        report[kind] = {"train_seconds": seconds, "predict_next": full, "forward_only": floor,
                        "ratio_p50": full["p50_ms"] / floor["p50_ms"],
                        "test_direction_accuracy": result.metrics.get("direction_accuracy"),
                        "test_skill": result.metrics.get("skill")}
    return report


def print_table(report: dict[str, Any]) -> None:
    print(f"{'kind':8}{'train s':>9}{'predict_next p50 ms':>21}{'forward p50 ms':>16}{'ratio':>7}")
    for kind, row in report["kinds"].items():
        print(f"{kind:8}{row['train_seconds']:>9.2f}{row['predict_next']['p50_ms']:>21.3f}"
              f"{row['forward_only']['p50_ms']:>16.3f}{row['ratio_p50']:>7.1f}")
    t = report["training"]
    print(f"data: {report['source']}; machine: {report['machine']['cpus']} CPUs")
    print(
        f"training: {t['candles']:,} candles, {t['epochs_run']} epochs (best {t['best_epoch']}), "
        f"{t['seconds']:.1f} s total, {t['seconds_per_epoch']:.2f} s/epoch"
    )
    print(f"{'one window':45}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in report["latency_one_window"].items():
        print(f"{name:45}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}")
    b = report["batch"]
    print(f"batch of {b['windows']:,}: predict_many {b['predict_many_windows_per_s']:,.0f} windows/s, ", end="")
    print(f"keras predict {b['keras_predict_windows_per_s_excluding_features']:,.0f} windows/s (without features)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", nargs="+", type=Path, help="Binance archive CSVs (default: generated candles)")
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs (early stopping applies)")
    parser.add_argument("--repeats", type=int, default=1000, help="calls per latency measurement")
    parser.add_argument("--batch", type=int, default=10_000, help="windows in the batch measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args.csv, args.epochs, args.repeats, args.batch)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from shared.model.report import jsonable

    args.out.write_text(json.dumps(jsonable(report), indent=1))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
