"""Where a training step's time goes: each fast path of the backend and xp.matmul, timed inside fit.

    PORTANET_NUM_THREADS=2 taskset -c 0,1 python ci/profile_step.py [--model lenet] [--samples 6400]

Builds a model of ci/bench.py (same layers, batch size and Adam 1e-3) on random data, trains one
untimed epoch, then times two epochs with every entry of `backend.fast` and `xp.matmul` wrapped
in a timer; prints milliseconds per step for each, largest first, and the rest (layers' other
array operations, the optimizer's Python, the graph's bookkeeping). Wrapping costs a little per
call, so the total is a little above an unwrapped step's; a fast path called inside another
(blockwise around threefry2x32 when drawing random numbers) counts in both.
"""
import argparse
import time
from collections import defaultdict

import numpy as np

import portanet as pn
from bench import MODELS, portanet_model
from portanet.backend import namespace_copy


def timed(name, fn, totals):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start
    return wrapper


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet", choices=sorted(MODELS))
    parser.add_argument("--samples", type=int, default=6400)
    args = parser.parse_args()
    spec, totals = MODELS[args.model], defaultdict(float)
    backend = pn.backend.get()
    for name, fn in list(backend.fast.items()):
        backend.fast[name] = timed(name, fn, totals)
    backend.xp = namespace_copy(backend.xp, backend.xp.__name__, matmul=timed("matmul", backend.xp.matmul, totals))
    model = portanet_model(spec)
    model.compile(pn.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, *spec["input"]), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    model.fit(x, y, batch_size=spec["batch"], epochs=1, verbose=0)
    totals.clear()
    start = time.perf_counter()
    model.fit(x, y, batch_size=spec["batch"], epochs=2, verbose=0)
    total, steps = time.perf_counter() - start, 2 * (args.samples // spec["batch"])
    print(f"{args.model} on {backend.name} (threads: {backend.thread_report()}): {1e3 * total / steps:.2f} ms per step")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {name:<20} {1e3 * seconds / steps:7.2f}")
    print(f"  {'rest':<20} {1e3 * (total - sum(totals.values())) / steps:7.2f}")


if __name__ == "__main__":
    main()
