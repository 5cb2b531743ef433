from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.predictor.support import train_tiny


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two versions (same weights) of one tiny trained model, trained once per session."""
    return train_tiny(tmp_path_factory.mktemp("tiny-models"))
