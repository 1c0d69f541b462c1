"""The GPU paths: CuPy's CUDA graphs and its cuBLAS products, JAX epochs without per-step host
transfers, and real out-of-memory errors. Tests that need an NVIDIA GPU skip cleanly without one."""
import re
import warnings

import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet.errors import DeviceMemoryError
from portanet.layers import AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D

from conftest import usable

rng = np.random.default_rng(0)


def on_gpu(name):
    """Skip unless backend `name` runs on an NVIDIA GPU here."""
    ok, reason = usable(name)
    if not ok:
        pytest.skip(reason)
    backend = B.load(name)
    if name == "jax" and backend.device.platform != "gpu":
        pytest.skip(f"JAX runs on {backend.device}, not a GPU")
    return backend


@pytest.fixture
def cupy_backend():
    on_gpu("cupy")
    with B.use("cupy", floatx="float32") as backend:
        yield backend


# ----- cuBLAS products ----------------------------------------------------------------------------
def _layouts(cp_backend, a):
    """`a` on the device as a C-ordered array, a Fortran-ordered one and a strided slice."""
    big = np.zeros((2 * a.shape[0], a.shape[1] + 3), dtype=a.dtype)
    big[::2, 1:1 + a.shape[1]] = a
    return {"C": cp_backend.asarray(a), "F": cp_backend.asarray(np.asfortranarray(a)),
            "strided": cp_backend.asarray(big)[::2, 1:1 + a.shape[1]]}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cublas_matmul_matches_numpy_for_every_layout(cupy_backend, dtype, monkeypatch):
    calls = []
    original = cupy_backend.cublas.matmul
    monkeypatch.setattr(cupy_backend.cublas, "matmul", lambda a, b: calls.append(1) or original(a, b))
    a, b = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((5, 3)).astype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for name_a, da in _layouts(cupy_backend, a).items():
        for name_b, db in _layouts(cupy_backend, b).items():
            got = cupy_backend.to_numpy(cupy_backend.xp.matmul(da, db))
            np.testing.assert_allclose(got, a @ b, rtol=rtol, atol=rtol, err_msg=f"{name_a} @ {name_b}")
    assert len(calls) == 9
    batched = rng.standard_normal((2, 4, 5)).astype(dtype)   # (..., k) @ (k, n): one GEMM too
    got = cupy_backend.xp.matmul(cupy_backend.asarray(batched), cupy_backend.asarray(b))
    np.testing.assert_allclose(cupy_backend.to_numpy(got), batched @ b, rtol=rtol, atol=rtol)
    assert len(calls) == 10
    for x1, x2 in ((a[0], b), (a[:0], b), (a.astype(np.int32), b.astype(np.int32))):  # as CuPy does them
        got = cupy_backend.xp.matmul(cupy_backend.asarray(x1), cupy_backend.asarray(x2))
        np.testing.assert_allclose(cupy_backend.to_numpy(got), x1 @ x2, rtol=rtol, atol=rtol)
    assert len(calls) == 10


# ----- fused optimizer updates -------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("options", [{}, {"epsilon_hat": True}, {"weight_decay": 0.1, "epsilon": 1e-3}],
                         ids=["plain", "epsilon_hat", "weight_decay"])
def test_fused_adam_equals_the_portable_update(floatx, options, monkeypatch):

    on_gpu("cupy")
    calls = []
    with B.use("cupy", floatx=floatx) as backend:
        fused = backend.fast["adam"]
        monkeypatch.setitem(backend.fast, "adam", lambda *args: calls.append(1) or fused(*args))
        dtype = backend.float_dtype()
        params = {"w": backend.asarray(rng.standard_normal((5, 7)), dtype=dtype),
                  "b": backend.asarray(rng.standard_normal(7), dtype=dtype)}
        grads = [{k: backend.asarray(rng.standard_normal(v.shape), dtype=dtype) for k, v in params.items()}
                 for _ in range(4)]
        results = []
        for portable in (False, True):
            opt = pn.optimizers.Adam(learning_rate=0.05, **options)
            p, state = params, opt.init(params)
            with B.portable() if portable else warnings.catch_warnings():
                for g in grads:
                    p, state = opt.update(p, g, state)
            results.append([backend.to_numpy(a) for a in (p["w"], p["b"], *state["momentum"].values(),
                                                           *state["velocity"].values())])
    assert len(calls) == 2 * len(grads)   # the fused kernel ran for both parameters at every step
    rtol = 1e-5 if floatx == "float32" else 1e-13
    for fused, portable in zip(*results):
        np.testing.assert_allclose(fused, portable, rtol=rtol, atol=rtol * 1e-2)


# ----- CUDA graphs --------------------------------------------------------------------------------
def _cnn():
    pn.set_seed(3)
    return pn.Sequential([pn.Input((1, 12, 12)), Conv2D(4, 3, activation="relu"), MaxPool2D(2),
                          Conv2D(6, 3, padding="same", activation="relu"), AveragePooling2D(2), Flatten(),
                          Dense(16, activation="relu"), Dropout(0.25), Dense(3, activation="softmax")])


def _train(jit_compile):
    x = np.random.default_rng(7).standard_normal((100, 1, 12, 12)).astype(np.float32)
    y = (x[:, 0, :6].sum(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, 6:, :6].mean(axis=(1, 2)) > 0.1)
    model = _cnn()
    model.compile(optimizer=pn.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    # 80 training examples in batches of 24: three full batches and one of 8 per epoch
    history = model.fit(x, y, epochs=4, batch_size=24, validation_split=0.2, verbose=0, seed=5)
    return model, history.history, model.predict(x[:30], batch_size=8)


@pytest.mark.gpu
def test_cuda_graph_training_equals_eager(cupy_backend):
    from portanet.backends.cupy import _Captured, _Graphs
    eager, eager_history, eager_predictions = _train(jit_compile=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # no step may fall back to eager
        model, history, predictions = _train(jit_compile=True)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(history[key], eager_history[key], rtol=1e-6, err_msg=key)
    for got, want in zip(model.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictions, eager_predictions, rtol=1e-5, atol=1e-6)
    # a graph per shape seen at least twice: training's full batches and its last batch of 8 (4
    # epochs), validation's batch of 20, prediction's batches of 8 (not the single last one of 6)
    for name, graphs in (("train", 2), ("eval", 1), ("predict", 1)):
        step = next(s for (n, _), s in model.steps.compiled.items() if n == name)
        assert isinstance(step, _Graphs) and not step.failures, name
        assert sum(isinstance(g, _Captured) for g in step.graphs.values()) == graphs, name


@pytest.mark.gpu
def test_cuda_graph_updates_donated_arguments_in_place(cupy_backend):
    from portanet.backends.cupy import _Captured
    xp = cupy_backend.xp

    def step(state, x):
        return {"w": state["w"] * 0.5 + xp.sum(x), "n": state["n"] + 1}, xp.mean(x)

    f = cupy_backend.jit(step, donate_argnums=(0,))
    state = {"w": cupy_backend.asarray(np.ones(3, np.float32)), "n": cupy_backend.asarray(np.int32(0))}
    w, means, returned = np.ones(3, np.float32), [], []
    for i in range(6):
        x = rng.standard_normal(4 + (i == 5)).astype(np.float32)   # the last call: a new signature
        state, mean = f(state, cupy_backend.asarray(x))
        w = w * np.float32(0.5) + x.sum(dtype=np.float32)
        np.testing.assert_allclose(cupy_backend.to_numpy(state["w"]), w, rtol=1e-5)
        assert int(cupy_backend.to_numpy(state["n"])) == i + 1
        means.append((mean, x.mean()))
        returned.append(state["w"])
    captured = [g for g in f.graphs.values() if isinstance(g, _Captured)]
    assert len(captured) == 1
    # calls 2-5 replayed the graph: the state they returned is the graph's own input arrays, so
    # passing it back copied nothing ...
    assert all(a is captured[0].inputs[0] for a in returned[1:5])
    # ... while outputs that are not donated are fresh arrays, not overwritten by later calls
    for mean, expected in means:
        np.testing.assert_allclose(float(cupy_backend.to_numpy(mean)), expected, rtol=1e-5)


@pytest.mark.gpu
def test_sign_is_captured_and_keeps_nan(cupy_backend):
    """sign (Huber's and MAE's gradients, L1 regularization) without array-api-compat's boolean
    mask, which synchronised with the host and kept such steps out of CUDA graphs."""
    xp = cupy_backend.xp
    x = np.array([-2.0, -0.0, 0.0, 3.5, np.nan, -np.inf], np.float32)
    f = cupy_backend.jit(lambda a: xp.sign(a) * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        outs = [cupy_backend.to_numpy(f(cupy_backend.asarray(x))) for _ in range(3)]
    assert not f.failures
    for out in outs:
        np.testing.assert_array_equal(out, np.sign(x) * 2)


@pytest.mark.gpu
def test_huber_loss_and_l1_regularization_train_in_a_cuda_graph(cupy_backend):
    from portanet.backends.cupy import _Captured
    x = rng.standard_normal((40, 5)).astype(np.float32)
    model = pn.Sequential([pn.Input((5,)), Dense(4, activation="tanh", kernel_regularizer="l1"), Dense(1)])
    model.compile(optimizer="adam", loss="huber", metrics=["mae"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.fit(x, x[:, :1] * 2, epochs=2, batch_size=10, verbose=0)
    step = next(s for (n, _), s in model.steps.compiled.items() if n == "train")
    assert not step.failures and any(isinstance(g, _Captured) for g in step.graphs.values())


@pytest.mark.gpu
def test_joins_of_many_arrays_are_captured(cupy_backend):
    """cupy.concatenate joins more than 8 small arrays through a pointer table sent from the host;
    the backend's concat and stack do not (a max pooling of 16x16 windows stacks 16 slices)."""
    xp = cupy_backend.xp
    pieces = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(20)]

    def step(arrays):
        return xp.stack(arrays, axis=1), xp.concat(arrays, axis=-1), xp.stack(arrays[:3], axis=-1)

    f = cupy_backend.jit(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for _ in range(3):
            outs = f([cupy_backend.asarray(p) for p in pieces])
    assert not f.failures
    for got, want in zip(outs, (np.stack(pieces, axis=1), np.concatenate(pieces, axis=-1),
                                np.stack(pieces[:3], axis=-1))):
        np.testing.assert_array_equal(cupy_backend.to_numpy(got), want)


@pytest.mark.gpu
@pytest.mark.parametrize("blocker", ["host synchronisation", "host data"])
def test_a_step_that_cannot_be_captured_runs_eagerly(cupy_backend, blocker):
    xp = cupy_backend.xp
    host = np.arange(3, dtype=np.float32)

    def step(x):
        if blocker == "host synchronisation":
            return x * float(xp.sum(x))
        return x + cupy_backend.asarray(host)

    f = cupy_backend.jit(step)
    x = np.ones(3, np.float32)
    with pytest.warns(RuntimeWarning, match="runs without a CUDA graph"):
        outs = [cupy_backend.to_numpy(f(cupy_backend.asarray(x))) for _ in range(4)]
    for out in outs:
        np.testing.assert_array_equal(out, x * 3 if blocker == "host synchronisation" else x + host)
    assert len(f.failures) == 1 and list(f.graphs.values()) == [None]
    assert re.search(r" at test_gpu\.py:\d+ in step$", next(iter(f.failures.values())))  # the line to fix


# ----- out of memory --------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cupy", "jax"])
def test_a_batch_too_large_for_the_device_is_a_clear_error(name):
    """A real allocation failure: 1024 images of 256x256 through 1024 3x3 filters need 270 GB of
    activations. The error names the batch size; the weights are intact and training goes on."""
    on_gpu(name)
    with B.use(name, floatx="float32"):
        pn.set_seed(0)
        model = pn.Sequential([pn.Input((1, 256, 256)), Conv2D(1024, 3, activation="relu"), MaxPool2D(16),
                               Flatten(), Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        x, y = np.zeros((1024, 1, 256, 256), np.float32), np.zeros((1024, 1), np.float32)
        weights = model.get_weights()
        with pytest.raises(DeviceMemoryError, match="Received: batch_size=1024; try a smaller one"):
            model.fit(x, y, batch_size=1024, epochs=1, verbose=0)
        for before, after in zip(weights, model.get_weights()):
            np.testing.assert_array_equal(before, after)
        history = model.fit(x[:4], y[:4], batch_size=2, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])


# ----- JAX: whole chunks of an epoch per call --------------------------------------------------------
def test_jax_epoch_sends_no_data_per_step(monkeypatch):
    """On JAX an epoch runs as about 20 compiled chunks over data already on the device: the host
    sends a chunk's batch indices, never a batch. (On a GPU run this checks the GPU path.)"""
    if not B.installed("jax"):
        pytest.skip("jax not installed")
    x = rng.standard_normal((3200, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    with B.use("jax") as backend:
        pn.set_seed(0)
        model = pn.Sequential([pn.Input((8,)), Dense(16, activation="relu"), Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)     # compiles
        sent = []
        original = type(backend).asarray
        monkeypatch.setattr(type(backend), "asarray",
                            lambda self, a, dtype=None: sent.append(np.shape(a)) or original(self, a, dtype))
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)     # 200 steps
    batches = [shape for shape in sent if shape[:1] == (16,) or shape == (16, 8)]
    assert not batches, f"batches were sent from the host: {batches[:3]}"
    assert len(sent) < 100, f"{len(sent)} transfers for 200 steps"
