"""Versioned model folders: write them atomically, load them only if they still fit the code.

    <model_dir>/<SYMBOL>-<interval>-<YYYYMMDDTHHMMSSZ>/
        preprocessing.json   window, feature list, scalers, climatology
        metadata.json        kind, symbol, interval, data range, metrics, baselines, versions, checksums
        ...                  the kind's own files (the LSTM's `model.keras`), see `shared.model.forecaster`

A model is only as good as the features it was trained on: loading refuses a folder whose
feature list or feature version differs from the running code's, whose files do not match their
checksums, or whose Keras/TensorFlow major version differs, with a message that says which.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.config import INTERVAL_MS
from shared.model import forecaster
from shared.model._tf import library_versions
from shared.model.dataset import TARGETS, Preprocessing
from shared.model.features import FEATURE_SETS, FEATURE_VERSION, FEATURES, LOOKBACK
from shared.model.forecaster import Forecaster
from shared.model.report import jsonable
from shared.model.training import TrainResult

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PREPROCESSING_FILE = "preprocessing.json"
METADATA_FILE = "metadata.json"


class ArtifactError(RuntimeError):
    """A model folder cannot be used with this code; the message says why."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def new_version(symbol: str, interval: str, now: datetime | None = None) -> str:
    """`BTCUSDT-5m-20261123T142900Z`: sortable, and says what and when at a glance."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{symbol.upper()}-{interval}-{stamp}"


def save_model(result: TrainResult, model_dir: Path, symbol: str, interval: str) -> Path:
    """Write `result` as a new version folder under `model_dir` and return its path.

    The folder appears complete or not at all (written aside, then renamed), so a predictor
    watching `model_dir` never loads half a model.
    """
    expected_ms = INTERVAL_MS.get(interval)
    if expected_ms is not None and expected_ms != result.model.interval_ms:
        raise ValueError(
            f"interval {interval} is {expected_ms} ms but the model was trained on {result.model.interval_ms} ms"
        )
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    base = new_version(symbol, interval)
    version, suffix = base, 1
    while (model_dir / version).exists():
        suffix += 1
        version = f"{base}-{suffix}"
    staging = model_dir / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        own_files = result.model.save_files(staging)
        (staging / PREPROCESSING_FILE).write_text(json.dumps(result.model.preprocessing.to_dict(), indent=1))
        checksums = {name: _sha256(staging / name) for name in (*own_files, PREPROCESSING_FILE)}
        metadata = _metadata(result, version, symbol, interval, checksums)
        (staging / METADATA_FILE).write_text(json.dumps(jsonable(metadata), indent=1, allow_nan=False))
        os.replace(staging, model_dir / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.model.metadata = metadata
    result.model.path = model_dir / version
    log.info("saved model %s", model_dir / version)
    return model_dir / version


def _metadata(
    result: TrainResult, version: str, symbol: str, interval: str, checksums: dict[str, str]
) -> dict[str, Any]:
    pre = result.model.preprocessing
    combined = hashlib.sha256("".join(checksums.values()).encode()).hexdigest()
    return {
        **result.model.metadata,  # what the kind recorded (lags, rounds, shrink factors, ...)
        "format_version": FORMAT_VERSION,
        "kind": result.model.kind,
        "version": version,
        "symbol": symbol.upper(),
        "interval": interval,
        "interval_ms": pre.interval_ms,
        "window": pre.window,
        "lookback": pre.lookback,
        "features": list(pre.features),
        "feature_version": pre.feature_version,
        "targets": list(TARGETS),
        "amplitude": "(high - low) / open of the predicted candle, as a fraction",
        "data_start": result.data_start,
        "data_end": result.data_end,
        "test_start": result.test_start,
        "data_start_iso": _iso(result.data_start),
        "data_end_iso": _iso(result.data_end),
        "test_start_iso": _iso(result.test_start),
        "metrics": result.metrics,
        "baseline_metrics": result.baseline_metrics,
        "alarms": result.alarms,
        "config": result.config.to_dict(),
        "best_epoch": result.best_epoch,
        "split_sizes": result.split_sizes,
        "train_seconds": result.train_seconds,
        "libraries": library_versions(),
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "checksums": checksums,
        "checksum": combined,
    }


def _major(version: str) -> str:
    return version.split(".")[0]


def _check_compatible(metadata: dict[str, Any], pre: Preprocessing, path: Path, strict_versions: bool) -> None:
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format {metadata.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    known_set = tuple(pre.features) in FEATURE_SETS.values()
    if not known_set or pre.feature_version != FEATURE_VERSION or pre.lookback != LOOKBACK:
        missing = sorted(set(FEATURES) - set(pre.features))
        extra = sorted(set(pre.features) - set(FEATURES))
        raise ArtifactError(
            f"{path}: trained on feature set v{pre.feature_version} (lookback {pre.lookback}), this code computes "
            f"v{FEATURE_VERSION} (lookback {LOOKBACK}); missing {missing or 'none'}, unknown {extra or 'none'}, "
            "or order/definitions changed. Retrain the model."
        )
    saved = metadata.get("libraries", {})
    current = library_versions()
    for lib in ("keras", "tensorflow"):
        if lib not in saved:
            raise ArtifactError(f"{path}: metadata does not record the {lib} version")
        if _major(saved[lib]) != _major(current[lib]) or (strict_versions and saved[lib] != current[lib]):
            raise ArtifactError(
                f"{path}: saved with {lib} {saved[lib]}, running {lib} {current[lib]}; retrain or pin {lib}"
            )
        if saved[lib] != current[lib]:
            log.warning("%s: saved with %s %s, running %s", path, lib, saved[lib], current[lib])


def load_model(path: Path | str, *, strict_versions: bool = False) -> Forecaster:
    """Load a version folder as the kind its metadata names, after checking checksums, features
    and library versions.

    `strict_versions=True` also refuses minor Keras/TensorFlow version differences.
    """
    path = Path(path)
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"{path}: not a model folder (no {METADATA_FILE})")
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{meta_path}: unreadable metadata ({exc})") from None
    checksums = metadata.get("checksums", {})
    if PREPROCESSING_FILE not in checksums:
        raise ArtifactError(f"{path}: metadata has no checksum for {PREPROCESSING_FILE}")
    for name in checksums:
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{path}: {name} is missing")
        if checksums[name] != _sha256(file):
            raise ArtifactError(f"{file}: checksum mismatch (file changed or truncated since it was saved)")
    preprocessing = Preprocessing.from_dict(json.loads((path / PREPROCESSING_FILE).read_text()))
    _check_compatible(metadata, preprocessing, path, strict_versions)
    try:
        kind = str(metadata.get("kind", forecaster.DEFAULT_KIND))
        return forecaster.load_files(kind, path, preprocessing, metadata)
    except ValueError as exc:  # an unknown kind
        raise ArtifactError(f"{path}: {exc}") from None
