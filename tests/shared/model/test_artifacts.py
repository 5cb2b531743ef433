from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.model.artifacts import (
    METADATA_FILE,
    PREPROCESSING_FILE,
    ArtifactError,
    _sha256,
    load_model,
    save_model,
)
from shared.model.inference import KERAS_FILE
from shared.model.training import TrainResult


@pytest.fixture(scope="module")
def saved(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(trained, tmp_path_factory.mktemp("models"), "BTCUSDT", "5m")


def _copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / saved.name
    shutil.copytree(saved, target)
    return target


def test_folder_layout_and_metadata(saved: Path, trained: TrainResult) -> None:
    assert re.fullmatch(r"BTCUSDT-5m-\d{8}T\d{6}Z", saved.name)
    assert {p.name for p in saved.iterdir()} == {KERAS_FILE, PREPROCESSING_FILE, METADATA_FILE}
    meta = json.loads((saved / METADATA_FILE).read_text())
    assert meta["version"] == saved.name and meta["symbol"] == "BTCUSDT" and meta["interval"] == "5m"
    assert meta["window"] == trained.config.window and meta["features"] == list(trained.model.preprocessing.features)
    assert meta["data_start"] == trained.data_start and meta["test_start"] == trained.test_start
    assert meta["metrics"]["skill"] == pytest.approx(trained.metrics["skill"])
    assert set(meta["baseline_metrics"]) == {"persistence", "mean_drift", "ema"}
    assert {"tensorflow", "keras", "numpy", "python"} <= set(meta["libraries"])
    assert len(meta["checksum"]) == 64
    assert not list(saved.parent.glob(".*partial"))


def test_save_load_predict_identical(saved: Path, trained: TrainResult, ar_candles: pd.DataFrame) -> None:
    loaded = load_model(saved)
    assert loaded.version == saved.name
    ends = np.arange(loaded.history_needed - 1, len(ar_candles) - 1, 3)
    before = trained.model.forecast(ar_candles, ends)
    after = loaded.forecast(ar_candles, ends)
    for field in ("open", "high", "low", "close", "p_up"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field))
    assert loaded.predict_next(ar_candles) == trained.model.predict_next(ar_candles)
    windows = loaded.windows(ar_candles, ends[:50])
    np.testing.assert_array_equal(loaded.keras_outputs(windows)[0], trained.model.keras_outputs(windows)[0])


def test_two_saves_get_two_versions(trained: TrainResult, tmp_path: Path) -> None:
    a = save_model(trained, tmp_path, "BTCUSDT", "5m")
    b = save_model(trained, tmp_path, "BTCUSDT", "5m")
    assert a != b and a.is_dir() and b.is_dir()


def test_tampered_file_is_refused(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    pre = json.loads((copy / PREPROCESSING_FILE).read_text())
    pre["feature_scaler"]["mean"][0] += 1
    (copy / PREPROCESSING_FILE).write_text(json.dumps(pre))
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(copy)


def _rewrite(copy: Path, edit_pre: object = None, edit_meta: object = None) -> None:
    meta = json.loads((copy / METADATA_FILE).read_text())
    if edit_pre is not None:
        pre = json.loads((copy / PREPROCESSING_FILE).read_text())
        edit_pre(pre)  # type: ignore[operator]
        (copy / PREPROCESSING_FILE).write_text(json.dumps(pre))
        meta["checksums"][PREPROCESSING_FILE] = _sha256(copy / PREPROCESSING_FILE)
    if edit_meta is not None:
        edit_meta(meta)  # type: ignore[operator]
    (copy / METADATA_FILE).write_text(json.dumps(meta))


def test_other_features_are_refused(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    _rewrite(copy, edit_pre=lambda pre: pre.update(features=[*pre["features"][:-1], "rsi_14"]))
    with pytest.raises(ArtifactError, match="feature set"):
        load_model(copy)


def test_other_feature_version_is_refused(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    _rewrite(copy, edit_pre=lambda pre: pre.update(feature_version=pre["feature_version"] + 1))
    with pytest.raises(ArtifactError, match="Retrain"):
        load_model(copy)


def test_other_library_major_version_is_refused(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    _rewrite(copy, edit_meta=lambda meta: meta["libraries"].update(keras="2.15.0"))
    with pytest.raises(ArtifactError, match=r"keras 2\.15\.0"):
        load_model(copy)


def test_minor_version_difference_is_refused_only_when_strict(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    current = json.loads((copy / METADATA_FILE).read_text())["libraries"]["tensorflow"]
    major = current.split(".")[0]
    _rewrite(copy, edit_meta=lambda meta: meta["libraries"].update(tensorflow=f"{major}.0.0"))
    load_model(copy)
    with pytest.raises(ArtifactError, match="tensorflow"):
        load_model(copy, strict_versions=True)


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a model folder"):
        load_model(tmp_path)


def test_missing_weights(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    (copy / KERAS_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_model(copy)
