"""Model files written before the architecture change (tests/data/v1_*.pnet, format version 1,
saved by portanet at commit 1f41f39, before the registry and the graph/steps/trainer split) still load: architecture, weights, compile settings,
optimizer state, and they go on training."""
from pathlib import Path

import numpy as np
import pytest

import portanet as pn
from portanet.layers import Add, Concatenate, Dense

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "v1_expected.npz") as arrays:
        return dict(arrays)


@pytest.mark.parametrize("name, x, y", [("sequential", "x", "y"), ("functional", "xf", "yf")])
def test_files_saved_before_load_and_train_on(backend, expected, name, x, y):
    model = pn.load_model(DATA / f"v1_{name}.pnet")
    key = name[:3]
    np.testing.assert_allclose(model.predict(expected[x]), expected[f"{key}_pred"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.evaluate(expected[x], expected[y], verbose=0), expected[f"{key}_eval"],
                               rtol=1e-5)
    np.testing.assert_allclose(model.learning_rate, expected[f"{key}_lr"], rtol=1e-6)
    history = model.fit(expected[x], expected[y], epochs=1, batch_size=10, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_weights_saved_before_load_into_the_same_architecture(backend, expected):
    inputs = pn.Input((6,))
    a = Dense(5, activation="elu")(inputs)
    b = Dense(5, activation="leaky_relu")(inputs)
    c = Concatenate()([Add()([a, b]), a])
    model = pn.Model(inputs=inputs, outputs=Dense(1, activation="sigmoid")(c))
    model.load_weights(DATA / "v1_functional.weights.pnet")
    np.testing.assert_allclose(model.predict(expected["xf"]), expected["fun_pred"], rtol=1e-5, atol=1e-6)
