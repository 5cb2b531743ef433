from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from services.trainer.worker import make_executor, shutdown_executor
from tests.services.predictor.support import train_tiny


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two versions (same weights) of one tiny trained model, trained once per session."""
    return train_tiny(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def worker() -> Iterator[ProcessPoolExecutor]:
    """The trainer's worker process, shared by the tests (it imports TensorFlow once)."""
    executor = make_executor()
    yield executor
    shutdown_executor(executor)
