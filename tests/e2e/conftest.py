from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from services.trainer.worker import make_executor, shutdown_executor


@pytest.fixture(scope="session")
def worker() -> Iterator[ProcessPoolExecutor]:
    """The trainer's worker process (it imports TensorFlow once)."""
    executor = make_executor()
    yield executor
    shutdown_executor(executor)
