"""The examples run end to end (``--quick``) on every usable backend (CuPy where there is a GPU).

The examples of a backend run one after another in one subprocess (tests/examples_runner.py)
with PORTANET_BACKEND set, on a small synthetic copy of the image datasets (``--data-dir``:
Fashion-MNIST and CIFAR-10 in their file formats, no MNIST, so the MNIST examples exercise their
fallback); each must exit with 0, print its key lines and write its files.
"""
import gzip
import importlib.util
import json
import os
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

import portanet as pn
from portanet import backend as B

from conftest import subprocess_pool, usable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("examples"),  # under pytest-xdist (--dist loadgroup): one worker starts the runs
    pytest.mark.skipif(any(importlib.util.find_spec(name) is None for name in ("matplotlib", "sklearn")),
                       reason="the examples need matplotlib and scikit-learn (the test extra)"),
]

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
BACKENDS = [pytest.param(name, marks=pytest.mark.gpu) if name in B.GPU_ONLY else name for name in B.KNOWN]
COMMON_LINES = ("test accuracy: ", "seconds per epoch: ")

# example -> (files written into --out, lines printed, whether it reads image datasets)
EXPECTED = {
    "lenet": (("lenet.pnet", "history.png"), ("dataset: Fashion-MNIST", "Total params: 61,706"), True),
    "mlp_sgd": (("accuracy.png",), ("MNIST not found", "falling back to Fashion-MNIST instead of MNIST",
                                    "dataset: Fashion-MNIST", "SGD: test loss",
                                    "SGD with momentum 0.5: test loss"), True),
    "optimizers": (("descent.png", "val_accuracy.png"),
                   ("x after 1000", "dataset: Fashion-MNIST",
                    *(f"{name}: test loss" for name in ("SGD", "Adam", "Adagrad", "RMSprop"))), True),
    "cifar_dense": (("history.png",), ("dataset: CIFAR-10", "training examples: 512, test examples: 50"), True),
    "iris": (tuple(f"confusion_{v}.png" for v in ("plain", "l2", "dropout")) + ("val_accuracy.png",),
             ("confusion matrix", "virginica", "macro avg", "l2: test loss", "dropout: test loss"), False),
    "digits": (tuple(f"confusion_{v}.png" for v in ("plain", "l2", "dropout")) + ("val_accuracy.png",),
               ("confusion matrix", "weighted avg", "plain: test loss", "dropout: test loss"), False),
    "roc": (("roc.png", "pr.png", "history.png"), ("ROC AUC: ", "precision-recall AUC: "), False),
}


def run(example, backend, out, *arguments, check=True):
    """Run examples/<example>.py --quick --out <out> with PORTANET_BACKEND=<backend> (JAX compiles
    at XLA's lowest optimisation level, set by conftest.py: a smoke run is mostly compilation)."""
    env = {**os.environ, "PORTANET_BACKEND": backend, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(EXAMPLES / f"{example}.py"), "--quick", "--out", str(out), *arguments]
    out.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, env=env, cwd=out.parent, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _write_idx(path, array):
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_data(root):
    """Fills `root` with fake fashion-mnist/ (600 train, 50 test) and cifar-10/ (5 x 120 train,
    50 test) in the real file formats; no mnist/."""
    rng = np.random.default_rng(0)
    fashion = root / "fashion-mnist"
    fashion.mkdir(parents=True)
    for split, n in (("train", 600), ("t10k", 50)):
        _write_idx(fashion / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(fashion / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    cifar = root / "cifar-10" / "cifar-10-batches-bin"
    cifar.mkdir(parents=True)
    for name, n in [(f"data_batch_{i}.bin", 120) for i in range(1, 6)] + [("test_batch.bin", 50)]:
        records = np.concatenate([(np.arange(n) % 10)[:, None], rng.integers(0, 256, (n, 3072))], axis=1)
        (cifar / name).write_bytes(records.astype(np.uint8).tobytes())
    return root


def run_all(examples, backend, data_dir, root):
    """Runs the `examples` (names) with --quick on `backend`, one after another in one process
    (tests/examples_runner.py: Python, the backend and matplotlib start once, not once per
    example). Returns {example: (CompletedProcess, out folder)}."""
    jobs, results = [], {}
    for example in examples:
        folder = root / example
        folder.mkdir(parents=True)
        argv = ["--quick", "--out", str(folder / "out"),
                *(("--data-dir", str(data_dir)) if EXPECTED[example][2] else ())]
        jobs.append({"script": str(EXAMPLES / f"{example}.py"), "argv": argv, "stdout": str(folder / "stdout"),
                     "stderr": str(folder / "stderr"), "code": str(folder / "code")})
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "PORTANET_BACKEND": backend, "PYTHONUNBUFFERED": "1"}
    runner = subprocess.run([sys.executable, str(pathlib.Path(__file__).with_name("examples_runner.py")),
                             str(root / "jobs.json")], env=env, cwd=root, capture_output=True, text=True, timeout=600)
    for example, job in zip(examples, jobs):
        code = pathlib.Path(job["code"])
        returncode = int(code.read_text()) if code.is_file() else f"none (the runner: {runner.returncode})"
        stdout, stderr = (pathlib.Path(job[k]).read_text() if pathlib.Path(job[k]).is_file() else ""
                          for k in ("stdout", "stderr"))
        result = subprocess.CompletedProcess(job["argv"], returncode, stdout, stderr + runner.stderr)
        results[example] = result, pathlib.Path(job["argv"][2])
    return results


@pytest.fixture(scope="module")
def started(request, tmp_path_factory):
    """The runs of the selected `test_example_runs` cases, started at once, one process per backend
    on conftest's `subprocess_pool`, JAX's (the slowest) first: {"data": the fake datasets' root,
    "runs": {backend: Future of run_all's result}}."""
    root, pool = tmp_path_factory.mktemp("examples"), subprocess_pool(request.config)
    keys = {(item.callspec.params["example"], item.callspec.params["backend"]) for item in request.session.items
            if getattr(item, "originalname", None) == "test_example_runs"}
    data = write_data(root / "data")
    runs = {b: pool.submit(run_all, sorted(e for e, k in keys if k == b), b, data, root / b)
            for b in sorted({b for _, b in keys if usable(b)[0]}, key=lambda b: (b != "jax", b))}
    return {"data": data, "runs": runs}


@pytest.fixture(scope="module")
def data_dir(started):
    return started["data"]


@pytest.fixture(scope="module")
def example_runs(started):
    """{backend: Future of run_all's result} for the selected `test_example_runs` cases."""
    return started["runs"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("example", EXPECTED)
def test_example_runs(example, backend, example_runs):
    ok, reason = usable(backend)
    if not ok:
        pytest.skip(reason)
    result, out = example_runs[backend].result()[example]
    assert result.returncode == 0, f"{example} on {backend} failed:\n{result.stdout}\n{result.stderr}"
    files, lines, _ = EXPECTED[example]
    for line in (f"backend: {backend}", *COMMON_LINES, *lines):
        assert line in result.stdout, f"{example} on {backend}: {line!r} not printed:\n{result.stdout}"
    for name in files:
        assert (out / name).is_file(), f"{example} on {backend} did not write {name}"
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if example == "optimizers":  # from x = 1.5 with rate 0.01, SGD settles in the minimum near 2.19450
        row = next(line.split() for line in result.stdout.splitlines() if line.split()[:2] == ["0.01", "1.5"])
        assert abs(float(row[-2]) - 2.19450) < 1e-4, row
    if example == "lenet":
        model = pn.load_model(out / "lenet.pnet")
        assert model.predict(np.zeros((2, 1, 32, 32), np.float32)).shape == (2, 10)


def test_lenet_falls_back_to_digits(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("lenet", "numpy", tmp_path / "out", "--data-dir", str(empty))
    assert "Fashion-MNIST not found" in result.stdout
    assert "training on scikit-learn's 8x8 digits" in result.stdout
    assert "training examples: 512, test examples: 360" in result.stdout
    assert "test accuracy: " in result.stdout
    assert (tmp_path / "out" / "history.png").is_file()


def test_lenet_finds_the_installed_fashion_mnist(tmp_path):
    result = run("lenet", "numpy", tmp_path / "out")  # portanet.datasets' default search
    if "Fashion-MNIST not found" in result.stdout:
        pytest.skip("no Fashion-MNIST installed")
    assert "dataset: Fashion-MNIST" in result.stdout
    assert "training examples: 512, test examples: 512" in result.stdout


@pytest.mark.parametrize("arguments, message", [
    (("--epochs", "0"), "expected a positive integer, got '0'"),
    (("--batch-size", "many"), "expected a positive integer, got 'many'"),
    (("--limit", "-3"), "expected a positive integer, got '-3'"),
    (("--seed", "-1"), "expected a non-negative integer, got '-1'"),
    (("--learning-rate", "1"), "unrecognized arguments"),
])
def test_bad_arguments_are_argparse_errors(arguments, message, tmp_path):
    result = run("roc", "numpy", tmp_path / "out", *arguments, check=False)
    assert result.returncode == 2
    assert "usage: roc.py" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_data_parallel_example_on_four_devices_matches_lenet_on_one(data_dir, example_runs, tmp_path):
    if not usable("jax")[0]:
        pytest.skip("jax backend not installed")
    parallel = run("data_parallel", "jax", tmp_path / "dp" / "out", "--data-dir", str(data_dir),
                   "--simulate-devices", "4")
    single = (example_runs["jax"].result()["lenet"][0] if "jax" in example_runs and  # the same run, done already
              "lenet" in example_runs["jax"].result() else run("lenet", "jax", tmp_path / "one" / "out",
                                                                "--data-dir", str(data_dir)))
    assert "data parallel over 4 devices: cpu:0, cpu:1, cpu:2, cpu:3; global batch 128, 32 per device" in parallel.stdout

    def test_line(stdout):
        return next(line for line in stdout.splitlines() if line.startswith("test loss: "))

    assert test_line(parallel.stdout) == test_line(single.stdout)
    assert (tmp_path / "dp" / "out" / "lenet.pnet").is_file()


def test_the_backend_flag_and_the_verbose_level(tmp_path):
    result = run("roc", "numpy", tmp_path / "out", "--backend", "strict", "--verbose", "2")
    assert "backend: strict" in result.stdout and "Epoch 1/1 - " in result.stdout
    quiet = run("iris", "numpy", tmp_path / "iris")   # iris prints no epoch lines unless asked
    assert "Epoch " not in quiet.stdout and "test accuracy: " in quiet.stdout
