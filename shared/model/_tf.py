"""One place that imports Keras, quietly and deterministically, and only when a caller needs it."""

from __future__ import annotations

import os
from typing import Any


def keras_module() -> Any:
    """Import Keras on the TensorFlow backend with TF's C++ logs silenced.

    oneDNN's fused CPU kernels are switched off (unless the caller chose otherwise): they change
    results between runs by float rounding, and fixed seeds should give fixed models.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def library_versions() -> dict[str, str]:
    """Versions an artifact records and checks on load."""
    import platform

    import numpy

    keras = keras_module()
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }
