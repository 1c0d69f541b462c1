"""Where one training step's time goes on the GPU (CuPy backend): milliseconds per step of
LeNet-5 (batch 128) and mlp-wide (batch 256), run eagerly and replayed as a CUDA graph, with and
without the backend's fast paths (fused Adam, im2col and col2im kernels; `portanet.backend.portable()`),
and the forward+backward pass and the Adam update alone. Wall-clock time over 50 steps after warm-up, the GPU synchronised at both ends.

    python ci/gpu_profile.py            # needs an NVIDIA GPU and CuPy
"""
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import LEARNING_RATE, MODELS, portanet_model  # noqa: E402

import portanet as pn  # noqa: E402
from portanet.training import steps  # noqa: E402


STEPS, WARMUP = 50, 3  # warm-up: the eager first call, the capture, the first replay


def milliseconds(run, synchronize):
    """ms per call of run() over STEPS calls after WARMUP."""
    for _ in range(WARMUP):
        run()
    synchronize()
    start = time.perf_counter()
    for _ in range(STEPS):
        run()
    synchronize()
    return (time.perf_counter() - start) / STEPS * 1e3


def profile(model_name, backend):
    spec = MODELS[model_name]
    pn.set_seed(0)
    model = portanet_model(spec)
    model.compile(optimizer=pn.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy")
    model.build(spec["input"])
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.random((spec["batch"], *spec["input"]), dtype=np.float32))
    y = backend.asarray(rng.integers(0, 10, spec["batch"]).astype(np.int32))
    synchronize = backend.device.synchronize
    graph = model.graph
    step = steps.make_train_step(graph, model.heads, model.optimizer)
    rows = {}
    for fused in (True, False):   # with and without the fast paths
        label = "" if fused else ", no fast paths"
        with contextlib.nullcontext() if fused else pn.backend.portable():
            for mode, fn in (("eager", step), ("CUDA graph", backend.jit(step, donate_argnums=(0, 1, 2)))):
                carry = [model.params, model.optimizer.init(model.params), model.steps.zero_totals()]

                def run(fn=fn, carry=carry):
                    carry[:] = fn(*carry, (x,), (y,), (None,), None, None)

                rows[f"step, {mode}{label}"] = milliseconds(run, synchronize)
            params, state = model.params, model.optimizer.init(model.params)
            grads = steps.loss_and_grads(graph, model.heads, params, x, y)[2]
            rows[f"Adam update alone, eager{label}"] = milliseconds(
                lambda: model.optimizer.update(params, grads, state), synchronize)
    rows["forward + backward alone, eager"] = milliseconds(
        lambda: steps.loss_and_grads(graph, model.heads, params, x, y), synchronize)
    print(f"\n{model_name} (batch {spec['batch']}) on {backend.device}: ms per step")
    for label, ms in rows.items():
        print(f"  {label:<42} {ms:8.3f}")


def main():
    backend = pn.backend.set("cupy")
    for model_name in ("lenet", "mlp-wide"):
        profile(model_name, backend)


if __name__ == "__main__":
    main()
