"""Threads and memory on the CPU: how many threads the numpy backend uses and why
(PORTANET_NUM_THREADS, the usable cores, one on a busy machine) and how it sets up malloc, shown by
`python -m portanet info`; a small conv model's training result does not depend on them; the relu_backward
and convolution fast paths match the portable code."""
import contextlib
import functools
import os
import platform
import subprocess
import sys
import threading
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
    monkeypatch.setattr(NUMPY_BACKEND, "DX_CHUNK", chunk)
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
import portanet.backends.numpy as numpy_backend
numpy_backend.CHUNK = 1   # a chunk per output row: the convolution's rows shared by the threads
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
    """A conv model trains to the same bits on 1 and 2 threads: with the backend's threads sharing
    the convolution's rows (every product of the step then on one BLAS thread), adapting or not,
    and without them (OpenBLAS's own 2 threads: the same bits for this model's products, not for
    every product: docs/architecture.md, "Threads")."""
    settings = [{"PORTANET_NUM_THREADS": "1"}, {"PORTANET_NUM_THREADS": "2"},
                {"PORTANET_NUM_THREADS": "2", "PORTANET_ADAPT_THREADS": "1"},
                {"PORTANET_NUM_THREADS": "2", "PORTANET_POOL": "0"}]
    runs = [run(TRAIN, **env) for env in settings]
    assert all(r.returncode == 0 for r in runs), "".join(r.stderr for r in runs)
    assert len({r.stdout for r in runs}) == 1, [r.stdout for r in runs]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, filters, kernel, strides, pads",
                         CONVOLUTIONS + [((128, 1, 32, 32), 6, (5, 5), (1, 1), ((0, 0), (0, 0)))])
def test_workers_give_the_bits_of_one_thread(monkeypatch, shape, filters, kernel, strides, pads, dtype):
    """The convolution with its tasks (chunks of rows, dx's loop) shared by three threads (one row
    per chunk, and LeNet-5's first layer in its default chunks) gives the same bits as on the
    calling thread alone, BLAS on one thread in both; other threads ran tasks (each records its
    thread, and waits a little so that a pool thread wakes before the caller has taken them all)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if shape[0] != 128:
        monkeypatch.setattr(NUMPY_BACKEND, "CHUNK", 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((filters, shape[1], *kernel)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    blas, threads = [], set()   # Workers' BLAS settings, recorded (BLAS itself set by the test)
    workers = NUMPY_BACKEND.Workers(3, blas.append)

    def recorded(task):
        time.sleep(0.002)
        threads.add(threading.get_ident())
        task()

    def recording(tasks):
        workers.run([functools.partial(recorded, task) for task in tasks])

    results = []
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for run_tasks in (NUMPY_BACKEND.serially, recording):
            z, cache = NUMPY_BACKEND.conv2d_forward(x, w, bias, strides, pads, run_tasks=run_tasks)
            dz = np.random.default_rng(1).standard_normal(z.shape).astype(dtype)
            results.append([z, *NUMPY_BACKEND.conv2d_backward(w, cache, dz, strides, pads, run_tasks=run_tasks)])
    for shared, alone in zip(*results):
        np.testing.assert_array_equal(shared, alone)
    assert len(threads) >= 2 and blas == [1, 3, 1, 3]


def test_workers_keep_blas_on_one_thread_until_the_step_ends():
    """Outside a step BLAS gets its threads back after each run; in a step (jit) only at the step's
    end, also where a task raises, and the error reaches the caller."""
    blas = []   # Workers' BLAS settings, recorded
    workers = NUMPY_BACKEND.Workers(2, blas.append)
    done = []
    workers.run([functools.partial(done.append, k) for k in range(5)])
    assert sorted(done) == list(range(5)) and blas == [1, 2]

    def task(k, fail_at):
        time.sleep(0.001)
        if k == fail_at:
            raise ZeroDivisionError

    def step(fail_at):
        for _ in range(2):
            workers.run([functools.partial(task, k, fail_at) for k in range(4)])
        assert blas[-1] == 1
        return "done"

    blas.clear()
    assert workers.step(step)(None) == "done" and blas == [1, 1, 2]
    for fail_at in (0, 3):   # the first task (the calling thread's), a later one
        blas.clear()
        with pytest.raises(ZeroDivisionError):
            workers.step(step)(fail_at)
        assert blas == [1, 2]
    workers.run([lambda: None])   # one task: no threads, BLAS left alone
    assert blas == [1, 2]


def test_workers_give_blas_back_when_the_last_step_or_run_ends():
    """Another user thread's step ends while a run (outside steps) is still working, and a step
    ends while the other thread's step goes on: BLAS stays on one thread until the last ends."""
    blas = []   # Workers' BLAS settings, recorded
    workers = NUMPY_BACKEND.Workers(2, blas.append)
    inside, leave = threading.Event(), threading.Event()

    def long_step():
        workers.run([lambda: None, lambda: None])
        inside.set()
        leave.wait(10)

    other = threading.Thread(target=workers.step(long_step))
    other.start()
    assert inside.wait(10)
    workers.step(lambda: workers.run([lambda: None, lambda: None]))()
    assert 2 not in blas
    seen = []

    def task():
        leave.set()
        other.join(10)
        seen.append(list(blas))

    workers.run([task, lambda: None])
    assert not other.is_alive() and 2 not in seen[0] and blas[-1] == 2


def test_workers_tasks_see_the_callers_error_state_and_survive_a_shut_pool():
    """A task on a pool thread raises under the caller's np.errstate(over="raise") as on the
    calling thread (NumPy keeps it per context); with the pool shut (as at the interpreter's exit)
    the calling thread runs every task."""
    workers = NUMPY_BACKEND.Workers(2, [].append)
    big = np.full(4, 3e38, np.float32)
    raised = []

    def overflow():
        time.sleep(0.002)
        try:
            big * np.float32(10)
            raised.append((threading.get_ident(), False))
        except FloatingPointError:
            raised.append((threading.get_ident(), True))

    with np.errstate(over="raise"):
        workers.run([overflow] * 8)
    assert len(raised) == 8 and all(r for _, r in raised) and len({t for t, _ in raised}) == 2
    workers.pool.shutdown()
    done = []
    workers.run([functools.partial(done.append, k) for k in range(4)])
    assert done == [0, 1, 2, 3]


def test_workers_are_on_by_default_and_shown():
    code = "import portanet as pn; b = pn.backend.get(); print(b.thread_report()); print(b.fast['conv2d_forward'])"
    two, off, one = (run(code, PORTANET_NUM_THREADS=n, **env) for n, env in
                     (("2", {}), ("2", {"PORTANET_POOL": "0"}), ("1", {})))
    assert "convolutions' chunks of rows shared by 2 threads" in two.stdout, two.stdout + two.stderr
    assert "Workers.run" in two.stdout
    for other in (off, one):
        assert "shared" not in other.stdout and "Workers" not in other.stdout, other.stdout + other.stderr
    bad = run("import portanet.__main__ as m; m.main(['info'])", PORTANET_NUM_THREADS="1", PORTANET_POOL="on")
    assert "Expected \"0\" or \"1\" (or unset). Received: PORTANET_POOL='on'" in bad.stdout


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


FORK = """
import functools, os, signal
import portanet.backends.numpy as numpy_backend
workers = numpy_backend.Workers(2, lambda count: None)
done = []
workers.run([functools.partial(done.append, k) for k in (0, 1)])
pid = os.fork()
if pid == 0:   # the child: killed after 20 s if it waits on its parent's threads
    signal.alarm(20)
    workers.run([functools.partial(done.append, k) for k in (2, 3)])
    os._exit(0 if sorted(done) == [0, 1, 2, 3] else 1)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_workers_start_again_in_a_forked_process():
    """A process forked after the pool started (multiprocessing's default on Linux) gets its own
    threads instead of waiting on its parent's."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    child = run(FORK)
    assert child.stdout.strip() == "0", child.stdout + child.stderr
