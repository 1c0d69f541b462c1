"""Data parallelism (portanet.distribution) on the CPU: 4 simulated devices in one process, and
two processes on 127.0.0.1 joined by `initialize` (JAX's gloo collectives), each giving the
single-device result up to float32 reduction order. The runs happen in fresh processes
(tests/distributed_worker.py): JAX reads XLA_FLAGS, and joins peers, only at start."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet.errors import InvalidArgumentError

from conftest import subprocess_pool

pytest.importorskip("jax")
pytestmark = pytest.mark.xdist_group("distribution")  # under pytest-xdist: one worker starts the runs once
WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
TIMEOUT = 240


def run_worker(out, mode, devices=1, process=None):
    env = {**os.environ, "PORTANET_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()}
    args = [sys.executable, WORKER, str(out), mode, *map(str, process or ())]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc):
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"the worker did not finish in {TIMEOUT} s:\n{output[-3000:]}")
    return proc.returncode, output


def run_to_end(out, mode, devices=1):
    """(exit code, output, results file) of one worker run."""
    return (*finish(run_worker(out, mode, devices)), out)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(out):
    """[(exit code, output)] of two workers joined by `initialize`, each feeding half of each batch."""
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [run_worker(out, "parallel", process=(coordinator, 2, i)) for i in range(2)]
    return [finish(p) for p in procs], out


@pytest.fixture(scope="module")
def started(request, tmp_path_factory):
    """The worker runs the selected tests need, started at once on conftest's `subprocess_pool`:
    {run name: Future of its result}."""
    root, pool = tmp_path_factory.mktemp("runs"), subprocess_pool(request.config)
    names = {item.originalname for item in request.session.items if getattr(item, "module", None) is request.module}
    four = "test_four_devices_in_one_process_train_as_one"
    two = "test_two_processes_feeding_half_of_each_batch_train_as_one"
    runs = {"single": pool.submit(run_to_end, root / "single.npz", "single")}
    if four in names:
        runs["four"] = pool.submit(run_to_end, root / "four.npz", "parallel", 4)
    if two in names:
        runs["two"] = pool.submit(run_two_processes, root / "two.npz")
    return runs


@pytest.fixture(scope="module")
def single(started):
    code, output, out = started["single"].result()
    assert code == 0, output[-3000:]
    return dict(np.load(out))


def assert_same_training(got, want):
    for key in want:
        if key in ("devices", "batch_error"):
            continue
        np.testing.assert_allclose(got[key], want[key], rtol=2e-5, atol=2e-6, err_msg=key)


def test_four_devices_in_one_process_train_as_one(single, started):
    code, output, out = started["four"].result()
    assert code == 0, output[-3000:]
    got = dict(np.load(out))
    assert int(got["devices"]) == 4
    assert_same_training(got, single)
    assert "Expected a global batch size divisible by the number of devices (4), e.g. 28. Received: " \
           "batch_size=30" in str(got["batch_error"])
    for name in ("mlp", "cnn"):
        np.testing.assert_allclose(got[f"{name}/reloaded"], single[f"{name}/predict"], rtol=2e-5, atol=2e-6)


def test_two_processes_feeding_half_of_each_batch_train_as_one(single, started):
    results, out = started["two"].result()
    if any(code != 0 for code, _ in results):
        text = "\n".join(output[-2000:] for _, output in results)
        if "gloo" in text.lower() and "not" in text.lower() or "collectives" in text.lower():
            pytest.skip(f"this JAX cannot run CPU collectives: {text[-300:]}")
        pytest.fail(text)
    got = dict(np.load(out))
    assert int(got["devices"]) == 2
    assert_same_training(got, single)


def test_other_backends_name_jax():
    with B.use("numpy"):
        with pytest.raises(InvalidArgumentError, match="Expected PORTANET_BACKEND=jax. Received: backend='numpy'"):
            pn.distribution.DataParallel()
        assert pn.distribution.distribution() is None
        assert pn.distribution.list_devices() == ["cpu"] or len(pn.distribution.list_devices()) == 1


def test_one_device_takes_any_batch():
    with B.use("jax"):
        dp = pn.distribution.DataParallel()
        assert dp.num_devices == 1 and dp.check_batch_size(7) == 7
        pn.distribution.set_distribution(dp)
        try:
            assert pn.distribution.distribution() is dp
        finally:
            pn.distribution.set_distribution(None)
        assert pn.distribution.distribution() is None
