"""The `backend` fixture: every test that takes it runs once per installed backend."""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

# Under pytest-xdist the workers are as many as the cores: one BLAS thread each (set before
# portanet's numpy backend starts), not every worker a thread per core.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("PORTANET_NUM_THREADS", "1")

# XLA compiles the suite's hundreds of small one-off programs at its lowest optimisation level:
# the JAX tests take a quarter less time (compiling is most of it); what they compute is checked
# the same way. Kept where XLA_FLAGS already sets a level.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

from portanet import backend as B
from portanet.errors import BackendUnavailableError

PARAMS = [pytest.param(name, marks=pytest.mark.gpu) if name in B.GPU_ONLY else name for name in B.KNOWN]


def usable(name):
    """(True, None) or (False, reason) for backend `name` on this machine."""
    if not B.installed(name):
        return False, f"{name} backend not installed"
    try:
        B.load(name)
    except BackendUnavailableError as error:
        return False, str(error)
    return True, None


def subprocess_pool(config):
    """A thread pool for tests that run subprocesses at once, shut down at the end of the session:
    one thread per core, or one under pytest-xdist (whose workers already fill the cores)."""
    pool = ThreadPoolExecutor(1 if os.environ.get("PYTEST_XDIST_WORKER") else os.cpu_count() or 1)
    config.add_cleanup(lambda: pool.shutdown(cancel_futures=True))
    return pool


@pytest.fixture(params=PARAMS)
def backend(request):
    """The Backend under test, current for the duration of the test, at float32."""
    ok, reason = usable(request.param)
    if not ok:
        pytest.skip(reason)
    with B.use(request.param, floatx="float32") as b:
        yield b


@pytest.fixture
def float64(backend):
    """The same backend at float64 (JAX turns on x64)."""
    with B.use(backend.name, floatx="float64") as b:
        yield b


@pytest.fixture(scope="session")
def keras():
    """Keras 3 on JAX, the oracle of Keras semantics (skipped where it is not installed)."""
    import os
    pytest.importorskip("jax")
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras is imported with another backend")
    return keras


@pytest.fixture
def keras64(keras):
    """Keras at float64 (JAX with x64) for the duration of the test."""
    import jax
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # losses and metrics compute in float64 too
    yield keras
    keras.config.set_dtype_policy("float32")
    keras.config.set_floatx("float32")
    jax.config.update("jax_enable_x64", x64)

