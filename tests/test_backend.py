import os
import subprocess
import sys

import numpy as np
import pytest

import portanet
from portanet import backend as B
from portanet.errors import BackendUnavailableError, InvalidArgumentError


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_version():
    assert portanet.__version__.count(".") == 2


def test_unknown_backend_lists_valid_names():
    with pytest.raises(InvalidArgumentError) as info:
        B.set("nope")
    for name in ("numpy", "jax", "cupy", "strict"):
        assert name in str(info.value)
    assert "Received: backend='nope'" in str(info.value)


@pytest.mark.parametrize("variable, value, expected", [
    ("PORTANET_BACKEND", "nope", "Expected one of ['cupy', 'jax', 'numpy', 'strict', 'torch']"),
    ("PORTANET_FLOATX", "float16", "Expected one of ['float32', 'float64']"),
    ("PORTANET_IMAGE_DATA_FORMAT", "nhwc", "Expected one of ['channels_first', 'channels_last']"),
    ("PORTANET_DEVICE_DATA_BUDGET", "lots", "Expected a number of bytes"),
])
def test_a_bad_setting_is_reported_at_first_use_not_at_import(variable, value, expected):
    """`import portanet` never fails with a traceback; the first use says what is wrong, and
    `python -m portanet info` shows it in its table."""
    assert run_python("import portanet", **{variable: value}).returncode == 0
    use = ("import numpy as np, portanet as pn\n"
           "m = pn.Sequential([pn.Input((3, 4, 4)), pn.layers.Conv2D(2, 3), pn.layers.Flatten(), pn.layers.Dense(1)])\n"
           "m.compile('sgd', 'mse'); m.fit(np.zeros((4, 3, 4, 4)), np.zeros((4, 1)), verbose=0)")
    result = run_python(use, **{variable: value})
    assert result.returncode != 0 and expected in result.stderr and f"Received: {variable}='{value}'" in result.stderr
    if variable in ("PORTANET_BACKEND", "PORTANET_FLOATX"):
        info = run_python("import portanet.__main__ as m; m.main(['info'])", **{variable: value})
        assert info.returncode == 0 and "backend: unusable: " in info.stdout and expected in info.stdout


def test_info_piped_into_head_ends_quietly():
    result = subprocess.run(f"{sys.executable} -m portanet info | head -1", shell=True, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.startswith("portanet ") and result.stderr == ""


def test_the_command_names_itself_as_it_was_called():
    code = "import sys; sys.argv = ['/usr/bin/portanet']; import portanet.__main__ as m; m.main(['bogus'])"
    assert run_python(code).stderr.startswith("usage: portanet ")
    assert run_python("import portanet.__main__ as m; m.main(['bogus'])").stderr.startswith("usage: python -m portanet ")


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setattr(B, "installed", lambda name: False)
    monkeypatch.setattr(B, "_loaded", {})
    with pytest.raises(BackendUnavailableError, match=r'pip install "portanet\[jax\]"'):
        B.load("jax")


def test_cupy_without_gpu_is_a_clear_error():
    if not B.installed("cupy"):
        pytest.skip("cupy not installed")
    try:
        B.load("cupy")
    except BackendUnavailableError as error:
        assert "GPU" in str(error)


def test_use_restores_on_exception(backend):
    before = B.get()
    with pytest.raises(RuntimeError):
        with B.use("numpy", floatx="float64"):
            assert B.floatx() == "float64"
            raise RuntimeError("boom")
    assert B.get() is before and B.floatx() == "float32"


def test_set_floatx_rejects_unknown():
    with pytest.raises(InvalidArgumentError, match="Received: floatx='float16'"):
        portanet.set_floatx("float16")


def test_float64_on_a_backend_without_it(monkeypatch, backend):
    monkeypatch.setattr(type(backend), "has_float64", False)
    if backend.name == "jax":
        pytest.skip("JAX enables float64 itself")
    with pytest.raises(InvalidArgumentError, match="has no float64"):
        portanet.set_floatx("float64")
    assert B.floatx() == "float32"


def test_available_lists_installed():
    names = B.available()
    assert "numpy" in names
    assert all(name in B.KNOWN for name in names)


def test_roundtrip_and_dtypes(backend):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = backend.asarray(x)
    assert a.shape == (2, 3) and a.dtype == backend.xp.float32
    np.testing.assert_array_equal(backend.to_numpy(a), x)
    assert backend.asarray([1.0, 2.0], dtype=backend.xp.float32).dtype == backend.xp.float32
    assert backend.float_dtype() == backend.xp.float32


def test_float64(float64):
    assert float64.float_dtype() == float64.xp.float64
    a = float64.asarray(np.array([1e-200]), dtype=float64.xp.float64)
    assert float64.to_numpy(a * 1e-100)[0] > 0  # underflows to 0 in float32


@pytest.mark.parametrize("source", ["numpy", "jax", "strict", "torch"])
def test_asarray_accepts_dlpack_arrays(backend, source):
    host = np.arange(4, dtype=np.float32)
    if source == "torch":
        torch = pytest.importorskip("torch")
        foreign = torch.arange(4, dtype=torch.float32)
    else:
        ok = B.installed(source)
        if not ok:
            pytest.skip(f"{source} not installed")
        foreign = B.load(source).asarray(host)
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray(foreign)), host)


def test_jit_compiles_where_the_backend_can(backend):
    """JAX traces the function once; CuPy runs it eagerly, then captures it as a CUDA graph and
    replays that; NumPy, strict and torch (without PORTANET_TORCH_COMPILE=1) run it eagerly and
    return the function itself, except NumPy on 2 or more threads (wrapped to give BLAS its threads
    back at the step's end, or to adapt them). Every call gives its result."""
    traces = []

    def f(a):
        traces.append(1)
        return a * 2.0 + 1.0

    jitted = backend.jit(f)
    for i in range(4):
        out = backend.to_numpy(jitted(backend.asarray(np.full(3, float(i), np.float32))))
        np.testing.assert_array_equal(out, np.full(3, 2.0 * i + 1.0, np.float32))
    eager = backend.name in ("numpy", "strict") or (backend.name == "torch" and not backend.compiles)
    if backend.name != "torch" or eager:  # (torch.compile replays a Python side effect at every call)
        assert len(traces) == (4 if eager else {"jax": 1, "cupy": 2}[backend.name])
    wrapped = backend.name == "numpy" and (backend.workers is not None or backend.adaptive)
    assert (jitted is f) == (eager and not wrapped)


def test_info_command():
    result = run_python("import portanet.__main__ as m; m.main(['info'])", PORTANET_BACKEND="numpy")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"portanet {portanet.__version__}" in out
    assert "backend: numpy (device: cpu)" in out and "floatx:  float32" in out
    for name in B.KNOWN:
        assert f"  {name} " in out


def test_info_on_jax():
    if not B.installed("jax"):
        pytest.skip("jax not installed")
    result = subprocess.run([sys.executable, "-m", "portanet", "info"], capture_output=True, text=True,
                            env={**os.environ, "PORTANET_BACKEND": "jax"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "backend: jax" in result.stdout
