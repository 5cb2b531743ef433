"""The Keras network: one or two LSTM layers feeding a regression and a classification head.

The two heads share the recurrent trunk because they read the same market state; they are
weighted so that the classification loss, which at 5 minutes is close to a coin flip's, cannot
dominate the gradient of the trunk. Layer names are fixed: the NumPy fast path finds weights
by them (see `inference.NumpyNetwork`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.model._tf import keras_module
from shared.model.dataset import TARGETS

REGRESSION_HEAD = "reg"
CLASSIFICATION_HEAD = "cls"


@dataclass(frozen=True)
class NetworkSpec:
    """Shape of the network; part of `TrainConfig`, recorded in the artifact's metadata."""

    window: int
    n_features: int
    layers: int = 1
    units: int = 32
    dropout: float = 0.0
    learning_rate: float = 1e-3
    huber_delta: float = 1.0
    cls_weight: float = 0.3


def lstm_name(i: int) -> str:
    return f"lstm_{i}"


MEMBER_PREFIX = "member_"


def build_network(spec: NetworkSpec, name: str = "candlecast") -> Any:
    """A compiled Keras model: input [batch, window, features] -> {reg: [batch, 4], cls: [batch, 1]}."""
    if spec.layers not in (1, 2):
        raise ValueError("the network has one or two LSTM layers")
    keras = keras_module()
    inputs = keras.Input(shape=(spec.window, spec.n_features), name="window")
    hidden = inputs
    for i in range(spec.layers):
        hidden = keras.layers.LSTM(spec.units, return_sequences=i < spec.layers - 1, name=lstm_name(i))(hidden)
    if spec.dropout > 0:
        hidden = keras.layers.Dropout(spec.dropout, name="dropout")(hidden)
    reg = keras.layers.Dense(len(TARGETS), name=REGRESSION_HEAD)(hidden)
    cls = keras.layers.Dense(1, activation="sigmoid", name=CLASSIFICATION_HEAD)(hidden)
    model = keras.Model(inputs, {REGRESSION_HEAD: reg, CLASSIFICATION_HEAD: cls}, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=spec.learning_rate, clipnorm=1.0),
        loss={
            REGRESSION_HEAD: keras.losses.Huber(delta=spec.huber_delta),
            CLASSIFICATION_HEAD: keras.losses.BinaryCrossentropy(),
        },
        loss_weights={REGRESSION_HEAD: 1.0, CLASSIFICATION_HEAD: spec.cls_weight},
    )
    return model


def combine_members(members: list[Any]) -> Any:
    """One Keras model averaging the outputs of independently trained members.

    Averaging a few networks trained from different seeds removes part of what each one fitted
    to noise; one model (one `.keras` file) keeps saving, loading and checksums unchanged. Each
    member keeps its own layer names inside a sub-model named `member_<i>`.
    """
    if len(members) == 1:
        return members[0]
    keras = keras_module()
    inputs = keras.Input(shape=tuple(members[0].inputs[0].shape[1:]), name="window")
    for i, member in enumerate(members):
        member.name = f"{MEMBER_PREFIX}{i}"
    outputs = [m(inputs) for m in members]
    reg = keras.layers.Average(name=REGRESSION_HEAD)([o[REGRESSION_HEAD] for o in outputs])
    cls = keras.layers.Average(name=CLASSIFICATION_HEAD)([o[CLASSIFICATION_HEAD] for o in outputs])
    return keras.Model(inputs, {REGRESSION_HEAD: reg, CLASSIFICATION_HEAD: cls}, name="candlecast_ensemble")
