"""Threads and memory on the CPU: how many threads the numpy backend uses and why
(PORTANET_NUM_THREADS, the usable cores, one on a busy machine) and how it sets up malloc, shown by
`python -m portanet info`; a small conv model's training result does not depend on them; the relu_backward
and convolution fast paths match the portable code."""
import contextlib
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pytest

from portanet import backend as B
from portanet import ops

from helpers import to_device, to_host

NUMPY_BACKEND = pytest.importorskip("portanet.backends.numpy")


def run(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PORTANET_BACKEND": "numpy", **env})


def test_the_thread_count_is_chosen_and_shown(monkeypatch):
    monkeypatch.setenv("PORTANET_NUM_THREADS", "3")
    assert NUMPY_BACKEND.choose_threads() == (3, "PORTANET_NUM_THREADS")
    monkeypatch.delenv("PORTANET_NUM_THREADS")
    monkeypatch.setattr(NUMPY_BACKEND, "usable_cores", lambda: 4)
    monkeypatch.setattr(NUMPY_BACKEND, "others_running", lambda: 3)
    assert NUMPY_BACKEND.choose_threads() == (4, "the usable cores (4)")
    monkeypatch.setattr(NUMPY_BACKEND, "others_running", lambda: 6)
    count, why = NUMPY_BACKEND.choose_threads()
    assert count == 1 and "busy: 6 other processes running on 4 cores" in why
    info = run("import portanet.__main__ as m; m.main(['info'])", PORTANET_NUM_THREADS="1")
    assert "threads: 1 (PORTANET_NUM_THREADS)" in info.stdout
    bad = run("import portanet.__main__ as m; m.main(['info'])", PORTANET_NUM_THREADS="many")
    assert "Expected a positive integer. Received: PORTANET_NUM_THREADS='many'" in bad.stdout


def test_other_running_processes_are_counted():
    assert NUMPY_BACKEND.others_running() >= 0
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        counts = []
        for _ in range(20):   # the busy loops need a moment to start
            counts.append(NUMPY_BACKEND.others_running())
            if counts[-1] >= 3:
                break
            time.sleep(0.1)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat: the 1-minute load average is used")
    assert max(counts) >= 3, counts


def test_blockwise_gives_the_bits_of_one_pass():
    """An update computed block by block equals the same formula over the whole arrays."""
    rng = np.random.default_rng(0)
    n = 5 * NUMPY_BACKEND.BLOCK + 17
    p, g, m = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    v = rng.random(n).astype(np.float32)

    def update(p, g, m, v):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        return p - 1e-3 * m / (np.sqrt(v) + 1e-7), m, v

    for got, want in zip(NUMPY_BACKEND.blockwise(update, p, g, m, v), update(p, g, m, v)):
        np.testing.assert_array_equal(got, want)


# (N, C, H, W), filters, kernel, strides, pads: LeNet-5's second layer, and a padded strided one
CONVOLUTIONS = [((6, 6, 14, 14), 16, (5, 5), (1, 1), ((0, 0), (0, 0))),
                ((5, 3, 15, 13), 4, (3, 2), (2, 3), ((1, 2), (0, 1)))]


@pytest.mark.parametrize("shape, filters, kernel, strides, pads", CONVOLUTIONS)
@pytest.mark.parametrize("chunk", [1, 1 << 21])
def test_convolution_in_chunks_of_rows_matches_portable_code(monkeypatch, shape, filters, kernel, strides, pads,
                                                             chunk):
    """The numpy convolution, its output rows computed one per chunk or many, against the
    portable code (float32: several GEMMs per row sum in another order)."""
    monkeypatch.setattr(NUMPY_BACKEND, "CHUNK", chunk)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((filters, shape[1], *kernel)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    results = []
    for context in (contextlib.nullcontext, B.portable):
        with B.use("numpy"), context():
            z, cache = ops.conv2d_forward(x, w, bias, strides, pads)
            dz = np.random.default_rng(1).standard_normal(z.shape).astype(np.float32)
            results.append([z, *ops.conv2d_backward(w, cache, dz, strides, pads)])
    for fast, portable in zip(*results):
        np.testing.assert_allclose(fast, portable, rtol=1e-4, atol=1e-4)


REUSE = """
import resource
import numpy as np
import portanet as pn
print(pn.backend.get().memory_report())
def step():   # large arrays freed and made again, as in a training step
    a = np.ones(4 << 20, dtype=np.float32)
    b = np.ones(2 << 20, dtype=np.float32)
    del a
    c = np.ones(6 << 20, dtype=np.float32)
    del b, c
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_freed_memory_is_kept_for_reuse():
    """With glibc, the numpy backend keeps freed large blocks in the heap: arrays made again in
    every step cost no page faults (glibc's defaults: hundreds per step); PORTANET_MALLOC=system
    and MALLOC_* settings leave malloc alone; a bad PORTANET_MALLOC is reported."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc is set up only with glibc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    runs = {}
    for name, extra in (("kept", {}), ("system", {"PORTANET_MALLOC": "system"}),
                        ("environment", {"MALLOC_ARENA_MAX": "4"})):
        result = subprocess.run([sys.executable, "-c", REUSE], capture_output=True, text=True, timeout=180,
                                env={**env, "PORTANET_BACKEND": "numpy", **extra})
        assert result.returncode == 0, result.stderr
        runs[name] = result.stdout.splitlines()
    assert runs["kept"][0].startswith("malloc keeps freed memory for reuse")
    assert "PORTANET_MALLOC=system" in runs["system"][0]
    assert "MALLOC_*" in runs["environment"][0]
    assert int(runs["kept"][1]) < 100 < int(runs["system"][1]), runs
    bad = run("import portanet.__main__ as m; m.main(['info'])", PORTANET_MALLOC="jemalloc")
    assert """Expected "system" (or unset). Received: PORTANET_MALLOC='jemalloc'""" in bad.stdout


TRAIN = """
import numpy as np, portanet as pn
pn.set_seed(0)
x = np.random.default_rng(0).random((256, 1, 12, 12), dtype=np.float32)
y = np.random.default_rng(1).integers(0, 4, 256)
m = pn.Sequential([pn.Input((1, 12, 12)), pn.layers.Conv2D(4, 3, activation="relu"), pn.layers.MaxPooling2D(2),
                   pn.layers.Flatten(), pn.layers.Dense(64, activation="relu"), pn.layers.Dense(4, activation="softmax")])
m.compile("adam", "sparse_categorical_crossentropy")
print(repr(m.fit(x, y, batch_size=64, epochs=2, verbose=0).history["loss"]))
print(repr(float(np.abs(m.get_weights()[0]).sum())))
"""


def test_the_result_does_not_depend_on_the_thread_count():
    """For this model's products OpenBLAS gives the same bits on 1 and 2 threads, adapting or not
    (not for every product: docs/architecture.md, "Threads")."""
    runs = [run(TRAIN, PORTANET_NUM_THREADS=n, PORTANET_ADAPT_THREADS=a) for n, a in (("1", "1"), ("2", "0"), ("2", "1"))]
    assert all(r.returncode == 0 for r in runs), "".join(r.stderr for r in runs)
    assert runs[0].stdout == runs[1].stdout == runs[2].stdout


def test_adaptive_threads_follow_the_fastest_count():
    """A step that is slow on 2 threads (a core shared with other work) moves to 1 thread at the
    first probe, back to 2 when 1 becomes the slow one, and every call runs on a count of the list."""
    slow = {"count": 2}
    used = []

    def step(x):
        time.sleep(0.006 if used[-1] == slow["count"] else 0.001)
        return x + 1

    tuner = NUMPY_BACKEND.AdaptiveThreads(step, used.append, 2)
    assert tuner.counts == [1, 2] and tuner.threads() == 2
    calls = 0
    while tuner.threads() == 2 and calls < 40:
        assert tuner(calls) == calls + 1
        calls += 1
    assert tuner.threads() == 1, "the first probe comes within 2 * RUNS + 2 * RUNS calls"
    slow["count"] = 1
    for _ in range(3 * tuner.RUNS):   # 25% slower than chosen: probes at once, not after PROBE calls
        tuner(0)
    assert tuner.threads() == 2
    assert set(used) == {1, 2}
    assert NUMPY_BACKEND.AdaptiveThreads(step, used.append, 16).counts == [1, 2, 4, 8, 16]


def test_adaptive_threads_are_opt_in_and_shown():
    on = run("import portanet as pn; print(pn.backend.get().thread_report())", PORTANET_NUM_THREADS="2",
             PORTANET_ADAPT_THREADS="1")
    off = run("import portanet as pn; print(pn.backend.get().thread_report())", PORTANET_NUM_THREADS="2")
    one = run("import portanet as pn; print(pn.backend.get().thread_report())", PORTANET_NUM_THREADS="1")
    assert "each step on the fastest of 2 and fewer" in on.stdout, on.stdout + on.stderr
    assert "fastest" not in off.stdout and "fastest" not in one.stdout
    bad = run("import portanet.__main__ as m; m.main(['info'])", PORTANET_ADAPT_THREADS="yes")
    assert "Expected \"0\" or \"1\" (or unset). Received: PORTANET_ADAPT_THREADS='yes'" in bad.stdout


@pytest.mark.parametrize("shape", [(7,), (4, 3, 20, 20)])
def test_relu_backward_fast_path_matches_portable_code(backend, shape):
    rng = np.random.default_rng(0)
    dy, z = rng.standard_normal(shape), np.round(rng.standard_normal(shape), 1)   # zeros in z
    fast = to_host(B.get().op("relu_backward")(to_device(dy), to_device(z)))
    with B.portable():
        portable = to_host(B.get().op("relu_backward")(to_device(dy), to_device(z)))
    np.testing.assert_array_equal(fast, portable)
    np.testing.assert_array_equal(portable, np.where(z > 0, dy, 0.0).astype(portable.dtype))
