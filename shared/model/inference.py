"""Fast inference: a NumPy forward pass over the trained weights, no `model.predict`.

`model.predict` builds a data pipeline and dispatches a graph on every call: tens of
milliseconds for one window, which a predictor running on every closed candle pays for
nothing. The same arithmetic in NumPy (float64) takes well under a millisecond for one window,
needs no TensorFlow at call time, and agrees with Keras to ~1e-6 (tests hold it to 1e-5).
One code path serves both one window (`predict_next`) and backlogs (`predict_many`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.model.dataset import Preprocessing, make_windows
from shared.model.features import compute_features
from shared.model.forecaster import ForecasterBase
from shared.model.linear_algebra import sigmoid
from shared.model.network import CLASSIFICATION_HEAD, MEMBER_PREFIX, REGRESSION_HEAD, lstm_name

log = logging.getLogger(__name__)

#: The LSTM kind's own file in a version folder.
KERAS_FILE = "model.keras"

_CHUNK = 1024  # samples per forward chunk: bounds memory at ~60 MB for W=60, 32 units



@dataclass(frozen=True)
class NumpyNetwork:
    """The network's weights as float64 arrays, and its forward pass.

    Keras's LSTM: gates in order input, forget, candidate, output; sigmoid recurrent
    activation, tanh activation, one bias. `from_keras` refuses any other configuration
    rather than compute something else quietly.
    """

    lstm: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    reg: tuple[np.ndarray, np.ndarray]
    cls: tuple[np.ndarray, np.ndarray]

    @classmethod
    def from_keras(cls, model: Any) -> NumpyNetwork:
        layers = {layer.name: layer for layer in model.layers}
        lstm = []
        i = 0
        while lstm_name(i) in layers:
            layer = layers[lstm_name(i)]
            config = layer.get_config()
            expected = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True}
            for key, value in expected.items():
                if config.get(key) != value:
                    raise ValueError(f"{layer.name}: {key}={config.get(key)!r}, the fast path needs {value!r}")
            if config.get("go_backwards") or config.get("stateful"):
                raise ValueError(f"{layer.name}: go_backwards/stateful LSTMs are not supported")
            kernel, recurrent, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
            lstm.append((kernel, recurrent, bias))
            i += 1
        if not lstm:
            raise ValueError("no LSTM layer named lstm_0 in the model")
        reg_w, reg_b = (np.asarray(w, np.float64) for w in layers[REGRESSION_HEAD].get_weights())
        cls_w, cls_b = (np.asarray(w, np.float64) for w in layers[CLASSIFICATION_HEAD].get_weights())
        return cls(lstm=tuple(lstm), reg=(reg_w, reg_b), cls=(cls_w, cls_b))

    def _lstm(self, x: np.ndarray, weights: tuple[np.ndarray, np.ndarray, np.ndarray], sequences: bool) -> np.ndarray:
        kernel, recurrent, bias = weights
        batch, steps, _ = x.shape
        units = recurrent.shape[0]
        projected = x @ kernel + bias  # all time steps at once: [batch, steps, 4 * units]
        h = np.zeros((batch, units))
        c = np.zeros((batch, units))
        outputs = np.empty((batch, steps, units)) if sequences else None
        for t in range(steps):
            z = projected[:, t] + h @ recurrent
            gates = sigmoid(z)
            c = gates[:, units : 2 * units] * c + gates[:, :units] * np.tanh(z[:, 2 * units : 3 * units])
            h = gates[:, 3 * units :] * np.tanh(c)
            if outputs is not None:
                outputs[:, t] = h
        return outputs if outputs is not None else h

    def forward(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scaled regression outputs [batch, 4], p_up [batch]) for scaled windows."""
        regs, probs = [], []
        for start in range(0, max(len(windows), 1), _CHUNK):
            hidden = np.asarray(windows[start : start + _CHUNK], np.float64)
            for i, weights in enumerate(self.lstm):
                hidden = self._lstm(hidden, weights, sequences=i < len(self.lstm) - 1)
            regs.append(hidden @ self.reg[0] + self.reg[1])
            probs.append(sigmoid(hidden @ self.cls[0] + self.cls[1])[:, 0])
        return np.concatenate(regs), np.concatenate(probs)


@dataclass(frozen=True)
class NumpyEnsemble:
    """Members' outputs averaged, as `network.combine_members` does in Keras."""

    members: tuple[NumpyNetwork, ...]

    @classmethod
    def from_keras(cls, model: Any) -> NumpyEnsemble:
        """Every `member_<i>` sub-model of `model`, or `model` itself as the only member."""
        subs = sorted(
            (layer for layer in model.layers if layer.name.startswith(MEMBER_PREFIX)),
            key=lambda layer: int(layer.name[len(MEMBER_PREFIX) :]),
        )
        return cls(tuple(NumpyNetwork.from_keras(m) for m in subs) or (NumpyNetwork.from_keras(model),))

    def forward(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scaled regression outputs [batch, 4], p_up [batch]), averaged over members."""
        if len(self.members) == 1:
            return self.members[0].forward(windows)
        outputs = [m.forward(windows) for m in self.members]
        reg = np.mean([o[0] for o in outputs], axis=0)
        p_up = np.mean([o[1] for o in outputs], axis=0)
        return reg, p_up


@dataclass
class LoadedModel(ForecasterBase):
    """The `lstm` kind of `shared.model.forecaster.Forecaster`: a trained multi-task LSTM ready to
    predict (Keras model, preprocessing, NumPy fast path, metadata)."""

    keras_model: Any
    preprocessing: Preprocessing
    network: NumpyEnsemble
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_keras(
        cls,
        keras_model: Any,
        preprocessing: Preprocessing,
        metadata: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> LoadedModel:
        return cls(keras_model, preprocessing, NumpyEnsemble.from_keras(keras_model), dict(metadata or {}), path)

    @property
    def kind(self) -> str:
        return "lstm"

    def save_files(self, folder: Path) -> tuple[str, ...]:
        self.keras_model.save(folder / KERAS_FILE)
        return (KERAS_FILE,)

    @classmethod
    def load_files(cls, folder: Path, preprocessing: Preprocessing, metadata: dict[str, Any]) -> LoadedModel:
        from shared.model._tf import keras_module  # imports TensorFlow

        keras_model = keras_module().models.load_model(folder / KERAS_FILE, compile=False)
        return cls.from_keras(keras_model, preprocessing, metadata, folder)

    def windows(self, candles: pd.DataFrame, end_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Scaled input windows [samples, window, features] (float32) ending at `end_indices`."""
        ends = np.asarray(end_indices, dtype=np.int64)
        lo, hi = self.check_ends(candles, ends)
        if len(ends) == 0:
            return make_windows(np.zeros((0, len(self.preprocessing.features))), ends, self.window)
        features = compute_features(candles.iloc[lo:hi], self.preprocessing.features)
        scaled = self.preprocessing.scale_features(features)
        return make_windows(scaled, ends - lo, self.window)

    def inputs(self, candles: pd.DataFrame, end_indices: np.ndarray) -> np.ndarray:
        return self.windows(candles, end_indices)

    def raw_outputs(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fast path: (scaled regression outputs, p_up) for input windows."""
        return self.network.forward(windows)

    def keras_outputs(self, windows: np.ndarray, use_predict: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The same through Keras (`model.predict`, or a direct call), for checks and benchmarks."""
        if use_predict:
            out = self.keras_model.predict(windows, verbose=0, batch_size=1024)
        else:
            out = self.keras_model(windows, training=False)
        return np.asarray(out[REGRESSION_HEAD], np.float64), np.asarray(out[CLASSIFICATION_HEAD], np.float64)[:, 0]
