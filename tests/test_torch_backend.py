"""What only the torch backend has: devices, its fast paths against the portable code,
torch.compile of the step against eager, and no autograd bookkeeping. (The rest of the suite runs
on it through the `backend` fixture.)"""
import os
import subprocess
import sys

import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet.errors import InvalidArgumentError

torch = pytest.importorskip("torch")


@pytest.fixture
def torch_backend():
    with B.use("torch", floatx="float64") as backend:
        yield backend


def test_devices_are_chosen_and_checked():
    backend = B.load("torch")
    with pytest.raises(InvalidArgumentError, match="Expected 'cpu', 'cuda', 'cuda:N' or 'mps'. Received: device='tpu'"):
        backend.select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="Expected a CUDA device of this machine"):
            backend.select_device("cuda:3")
    chosen = backend.device
    try:
        with B.use("torch"):
            assert B.set("torch", device="cpu").device == torch.device("cpu")
            assert B.set("torch").device == torch.device("cpu")   # no device: the one in use is kept
    finally:
        backend.select_device(str(chosen))
    with pytest.raises(InvalidArgumentError, match="the numpy backend's device"):
        B.set("numpy", device="cuda")
    B.set("numpy")


def test_arrays_are_made_on_the_backends_device(torch_backend, monkeypatch):
    """The namespace's creation functions default to the backend's device (torch's own default is
    the CPU, which broke every step on CUDA); a `device` given is kept."""
    xp = torch_backend.xp
    monkeypatch.setattr(torch_backend, "device", torch.device("meta"))
    made = [xp.zeros((2,)), xp.ones((2,)), xp.full((2,), 3.0), xp.empty((2,)), xp.eye(2), xp.arange(3),
            xp.linspace(0, 1, 3), xp.asarray([1.0, 2.0])]
    assert [a.device.type for a in made] == ["meta"] * len(made)
    assert xp.zeros((2,), device="cpu").device.type == "cpu"


def test_portanet_device_is_read_at_start():
    code = "import portanet as pn; b = pn.backend.get(); print(b.name, b.device)"
    env = {**os.environ, "PORTANET_BACKEND": "torch", "PORTANET_DEVICE": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "torch cpu", out.stderr


@pytest.mark.parametrize("op", ["relu_backward", "adam"])
def test_fast_paths_match_portable_code(torch_backend, op):
    rng = np.random.default_rng(0)
    if op == "relu_backward":
        z = np.round(rng.standard_normal((4, 3, 5)), 1)   # zeros included: the gradient there is 0
        args = [torch_backend.asarray(rng.standard_normal((4, 3, 5))), torch_backend.asarray(z)]
    else:
        p, g, m = (torch_backend.asarray(rng.standard_normal((6, 5))) for _ in range(3))
        v = torch_backend.asarray(rng.random((6, 5)))
        scalars = [torch_backend.asarray(a) for a in (1e-3, 0.19, 0.002)]
        args = [p, g, m, v, *scalars, 0.9, 0.999, 1e-7, False]
    fast = torch_backend.op(op)(*args)
    with B.portable():
        portable = torch_backend.op(op)(*args)
    for f, q in zip(fast if isinstance(fast, tuple) else [fast], portable if isinstance(portable, tuple) else [portable]):
        np.testing.assert_allclose(torch_backend.to_numpy(f), torch_backend.to_numpy(q), rtol=1e-13, atol=1e-15)


def fit_small_cnn(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 1, 10, 10)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    pn.set_seed(0)
    model = pn.Sequential([pn.Input((1, 10, 10)), pn.layers.Conv2D(4, 3, activation="relu"), pn.layers.MaxPooling2D(2),
                           pn.layers.Flatten(), pn.layers.Dropout(0.2), pn.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    return model, history.history


@pytest.mark.slow
def test_torch_compile_of_the_step_equals_eager(monkeypatch):
    with B.use("torch") as backend:
        eager, want = fit_small_cnn()
        monkeypatch.setattr(backend, "compiles", True)
        compiled, got = fit_small_cnn()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    for a, b in zip(compiled.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_nothing_asks_autograd_for_gradients():
    with B.use("torch"):
        model, _ = fit_small_cnn()
        leaves = [a for layer in model.params.values() for a in layer.values()]
        leaves += [a for a in pn.tree.tree_leaves(model.opt_state) if isinstance(a, torch.Tensor)]
        assert leaves and not any(a.requires_grad or a.grad_fn is not None for a in leaves)


def test_out_of_memory_is_recognised():
    backend = B.load("torch")
    assert backend.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not backend.is_out_of_memory(RuntimeError("shape mismatch"))
