"""Nothing lost, exact resume, and property-based checks of model building."""
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portanet as pn
from portanet import backend as B
from portanet.callbacks import ModelCheckpoint
from portanet.errors import DeviceMemoryError, PortanetError
from portanet.layers import Activation, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D

rng = np.random.default_rng(3)
X = rng.standard_normal((160, 6)).astype(np.float32)
Y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)


def fresh(seed=4):
    pn.set_seed(seed)
    m = pn.Sequential([pn.Input((6,)), Dense(12, activation="relu"), Dropout(0.3), Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_exact_resume(backend, tmp_path):
    """4 epochs, checkpoint, load, 4 more with initial_epoch=4 == 8 uninterrupted epochs."""
    straight = fresh()
    straight.fit(X, Y, epochs=8, batch_size=16, verbose=0)
    first = fresh()
    first.fit(X, Y, epochs=4, batch_size=16, verbose=0,
              callbacks=[ModelCheckpoint(tmp_path / "ckpt-{epoch}.pnet")])
    resumed = pn.load_model(tmp_path / "ckpt-4.pnet")
    assert resumed.initial_epoch == 4
    resumed.fit(X, Y, epochs=8, batch_size=16, verbose=0, initial_epoch=4)
    for got, want in zip(resumed.get_weights(), straight.get_weights()):
        if backend.name == "numpy":
            np.testing.assert_array_equal(got, want)  # bit-identical
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    import portanet as pn
    from portanet.layers import Dense
    pn.set_seed(0)
    model = pn.Sequential([pn.Input((1500,)), Dense(1500), Dense(2)])
    path = sys.argv[1]
    model.save(path)
    print("ready", flush=True)
    while True:
        model.set_weights([w + 1 for w in model.get_weights()])
        model.save(path)
""")


def test_killed_in_the_middle_of_a_save_loses_nothing(tmp_path):
    path = tmp_path / "ckpt.pnet"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    for delay in (0.05, 0.3, 0.7):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PORTANET_BACKEND": "numpy"})
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        with B.use("numpy"):
            weights = pn.load_model(path).get_weights()
            pn.set_seed(0)
            initial = pn.Sequential([pn.Input((1500,)), Dense(1500), Dense(2)]).get_weights()
        # every tensor comes from one and the same completed save: each save adds 1 to all weights
        k = weights[1][0]
        assert k == int(k) >= 0
        for got, start in zip(weights, initial):
            np.testing.assert_allclose(got, start + k, rtol=1e-6, atol=1e-4)


def test_nonfinite_input_is_found_before_training():
    m = fresh()
    x = X.copy()
    x[42, 3] = np.inf
    with pytest.raises(PortanetError, match="first at index 42"):
        m.fit(x, Y, verbose=0)
    m.fit(np.nan_to_num(x, posinf=0.0), Y, epochs=1, verbose=0, check_finite=False)


def test_overflow_gives_one_clear_warning(backend):
    pn.set_seed(0)
    m = pn.Sequential([pn.Input((6,)), Dense(8), Dense(1)])
    m.compile(optimizer=pn.optimizers.SGD(10.0), loss="mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(X, X[:, :1] * 100, epochs=3, batch_size=16, verbose=0)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "learning rate (10) is probably too high" in messages[0]


# ----- properties --------------------------------------------------------------------------------
IMAGE_LAYERS = st.sampled_from(["conv", "pool", "avgpool", "act", "dropout"])


def make_layer(kind, size, stride, padding):
    return {"conv": lambda: Conv2D(2, size, strides=stride, padding=padding, activation="relu"),
            "pool": lambda: MaxPool2D(size, strides=stride, padding=padding),
            "avgpool": lambda: AveragePooling2D(size, strides=stride, padding=padding),
            "act": lambda: Activation("tanh"),
            "dropout": lambda: Dropout(0.2)}[kind]()


def expected_size(n, size, stride, padding):
    return -(-n // stride) if padding == "same" else (n - size) // stride + 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channels=st.integers(1, 3), height=st.integers(1, 12), width=st.integers(1, 12),
       stack=st.lists(st.tuples(IMAGE_LAYERS, st.integers(1, 4), st.integers(1, 3),
                                st.sampled_from(["valid", "same"])), max_size=4),
       units=st.integers(1, 5))
def test_random_stacks_build_with_the_right_shapes(channels, height, width, stack, units):
    shape, valid = (channels, height, width), True
    for kind, size, stride, padding in stack:
        if kind in ("conv", "pool", "avgpool"):
            h, w = expected_size(shape[1], size, stride, padding), expected_size(shape[2], size, stride, padding)
            valid = valid and h >= 1 and w >= 1
            shape = (2 if kind == "conv" else shape[0], h, w)
    layers = [make_layer(*spec) for spec in stack]
    with B.use("numpy"):
        if not valid:
            with pytest.raises(PortanetError):  # the catalog's error, never one from inside numpy
                pn.Sequential([pn.Input((channels, height, width)), *layers, Flatten(), Dense(units)])
            return
        model = pn.Sequential([pn.Input((channels, height, width)), *layers, Flatten(), Dense(units)])
        assert model.layers[-2].output_shape == (int(np.prod(shape)),)
        out = model.predict(rng.standard_normal((2, channels, height, width)))
        assert out.shape == (2, units)
        assert all(layer.output_shape is not None for layer in model.layers)
        for layer, expected in zip(model.layers, layers):
            assert layer is expected


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(-2, 6), min_size=1, max_size=4), features=st.integers(-1, 5))
def test_random_dense_stacks_valid_or_clear_error(sizes, features):
    with B.use("numpy"):
        try:
            model = pn.Sequential([pn.Input((features,)), *[Dense(n) for n in sizes]])
        except PortanetError:
            assert features <= 0 or min(sizes) <= 0
            return
        assert features > 0 and min(sizes) > 0
        assert model.predict(np.ones((3, features), np.float32)).shape == (3, sizes[-1])
        assert model.count_params() == sum(a * b + b for a, b in zip([features, *sizes], sizes))


def test_out_of_memory_names_the_batch_size(backend, monkeypatch):
    m = pn.Sequential([pn.Input((6,)), Dense(3)])
    m.compile(optimizer="sgd", loss="mse")
    m.fit(X, X[:, :3], epochs=1, batch_size=32, verbose=0)
    weights = m.get_weights()

    def exhausted(*args):
        raise MemoryError("out of memory allocating 1 TiB")

    monkeypatch.setattr(m.steps, "get", lambda *args, **kwargs: exhausted)
    monkeypatch.setattr(type(backend), "compiled_loops", False)
    for call in (lambda: m.fit(X, X[:, :3], batch_size=256, verbose=0),
                 lambda: m.evaluate(X, X[:, :3], batch_size=256, verbose=0),
                 lambda: m.predict(X, batch_size=256)):
        with pytest.raises(DeviceMemoryError, match="Received: batch_size=256; try a smaller one, e.g. batch_size=128"):
            call()
    for before, after in zip(weights, m.get_weights()):
        np.testing.assert_array_equal(before, after)
    if backend.name == "jax":   # XLA reports exhaustion as an XlaRuntimeError with this status
        assert backend.is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not backend.is_out_of_memory(ValueError("shapes do not match"))
