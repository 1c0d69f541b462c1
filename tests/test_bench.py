"""ci/bench.py: the --quick smoke run prints and writes a row per framework, the weights copied
into a channels-last Keras model compute what portanet's do, and --device gpu without a GPU
stops with a message; ci/profile_step.py accounts for a step's time."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_datasets import make_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "ci" / "bench.py"
sys.path.insert(0, str(BENCH.parent))
import bench  # noqa: E402


def run_bench(*args, data=None, timeout=120):
    env = {**os.environ, "PORTANET_DATA": str(data)} if data is not None else None
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


@pytest.fixture
def tiny_fashion(tmp_path):
    """A random Fashion-MNIST look-alike (100 training, 64 test images) under $PORTANET_DATA."""
    make_idx_dataset(tmp_path / "fashion-mnist", n_train=100, n_test=64)
    return tmp_path


def test_quick_run_prints_and_writes_a_row_per_framework(tiny_fashion, tmp_path):
    have_torch = importlib.util.find_spec("torch") is not None
    out = tmp_path / "bench.json"
    result = run_bench("--quick", "--models", "mlp", "--backends", "numpy", "--peers", "torch",
                       "--limit", "64", "--json", str(out), data=tiny_fashion)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine: ") and lines[1].startswith("versions: ")
    assert any(line.startswith("mlp: MLP 784-40-40-40-10; batch 50; 64 training, 64 test samples") for line in lines)
    header = next(line for line in lines if line.startswith("framework"))
    for column in ("warm-up s", "s/epoch", "samples/s", "steps/s", "peak RSS MB", "test acc", "GEMM peak"):
        assert column in header
    frameworks = ["portanet-numpy"] + (["torch"] if have_torch else [])
    rows = [line.split()[0] for line in lines[lines.index(header) + 1:] if line and not line.startswith(" ")]
    assert rows == frameworks
    if not have_torch:
        assert "torch: skipped, not installed: torch" in lines
    assert "WARNING: the frameworks do not start from the same weights" not in result.stdout

    report = json.loads(out.read_text())
    assert report["limit"] == 64 and report["repeats"] == 1 and report["gemm_peak_flops"] > 0
    results = report["results"]
    assert [r["framework"] for r in results] == frameworks
    for r in results:
        assert r["model"] == "mlp" and r["train_samples"] == 64 and r["batch_size"] == 50
        assert len(r["epoch_seconds"]) == 1 and len(r["train_loss"]) == 2
        assert r["seconds_per_epoch"] > 0 and r["samples_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert 0 <= r["accuracy"] <= 1 and r["gemm_peak_percent"] > 0
        assert r["initial_loss"] == pytest.approx(results[0]["initial_loss"], abs=1e-4)  # the same weights
        assert ("vs_torch" in r) == have_torch
    if have_torch:
        assert results[-1]["vs_torch"]["seconds_per_epoch"] == 1


def test_keras_weights_give_the_same_outputs_channels_last():
    rng = np.random.default_rng(0)
    spec = bench.MODELS["lenet"]
    weights = [rng.standard_normal((6, 1, 5, 5)), rng.standard_normal(6), rng.standard_normal((16, 6, 5, 5)),
               rng.standard_normal(16), rng.standard_normal((400, 120)), rng.standard_normal(120),
               rng.standard_normal((120, 84)), rng.standard_normal(84), rng.standard_normal((84, 10)),
               rng.standard_normal(10)]
    converted = bench.keras_weights(spec, weights)
    assert converted[0].shape == (5, 5, 1, 6) and converted[2].shape == (5, 5, 6, 16)
    np.testing.assert_array_equal(converted[0][1, 2, 0, 3], weights[0][3, 0, 1, 2])
    features = rng.standard_normal((16, 5, 5))  # the last pooling layer's output, one sample, (C, H, W)
    np.testing.assert_allclose(features.transpose(1, 2, 0).reshape(-1) @ converted[4],
                               features.reshape(-1) @ weights[4], rtol=1e-12)
    for ours, theirs in zip(weights[5:], converted[5:]):
        np.testing.assert_array_equal(ours, theirs)


def test_gpu_options_are_checked():
    result = run_bench("--device", "gpu", "--backends", "numpy")
    assert result.returncode == 2 and "--device gpu runs the portanet backends cupy,cupy-eager,jax,torch,jax-dp, not 'numpy'" in result.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None or importlib.util.find_spec("jax") is None,
                    reason="needs JAX and a machine without an NVIDIA GPU")
def test_device_gpu_without_a_gpu_stops_with_a_message(tiny_fashion):
    result = run_bench("--device", "gpu", "--models", "mlp", "--backends", "jax", "--peers", "",
                       "--limit", "16", data=tiny_fashion)
    assert result.returncode == 1
    assert "portanet-jax: --device gpu, but jax runs on" in result.stderr


def test_profile_step_accounts_for_the_step():
    """ci/profile_step.py prints a step's time and its parts, the convolution's among them, the
    parts adding up to the step."""
    result = subprocess.run([sys.executable, str(ROOT / "ci" / "profile_step.py"), "--samples", "256"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "PORTANET_BACKEND": "numpy"})
    assert result.returncode == 0, result.stderr
    head, *rows = result.stdout.strip().splitlines()
    assert head.startswith("lenet on numpy (threads: ") and head.endswith(" ms per step")
    parts = {name: float(ms) for name, ms in (row.split() for row in rows)}
    assert {"conv2d_forward", "conv2d_backward", "maxpool2d_backward", "matmul", "rest"} <= set(parts)
    assert sum(parts.values()) == pytest.approx(float(head.split()[-4]), abs=0.05)
