"""LeNet-5's conv and pool layers, forward + backward, portanet (numpy backend, float32) vs PyTorch CPU.

    python ci/bench_layers.py [--batch 128] [--rounds 7] [--threads 2]

Batch 128, 1x32x32 -> Conv2D 6@5x5 -> 6x28x28 -> MaxPool 2 -> 6x14x14 -> Conv2D 16@5x5 -> 16x10x10
-> MaxPool 2 -> 16x5x5. Each layer is timed alone (the first conv needs no dx, as in a model) on the
input and output gradient the stack gives it (portanet keeps the batch axis innermost in memory
between its conv and pool layers; PyTorch's tensors are contiguous NCHW), then the whole stack as
a chain. PyTorch runs torch.nn.functional.conv2d /
max_pool2d with autograd and torch.set_num_threads(threads), in the same process, interleaved
round by round with portanet so that both see the same machine load; the table shows the best (and median)
time per forward+backward over the rounds. "portable" is portanet with its fast paths turned off
(portanet.backend.portable()).
"""
import argparse
import statistics
import time

import numpy as np

import portanet.backend as B
from portanet import random
from portanet.layers.conv import Conv2D
from portanet.layers.pooling import MaxPool2D


def timed(fn, n):
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    B.set("numpy")
    B.set_floatx("float32")
    rng = np.random.default_rng(0)
    N = args.batch

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    conv1, pool1 = Conv2D(6, 5, name="conv1"), MaxPool2D(2, name="pool1")
    conv2, pool2 = Conv2D(16, 5, name="conv2"), MaxPool2D(2, name="pool2")
    shape = (1, 32, 32)
    layers = [conv1, pool1, conv2, pool2]
    params, inputs = [], []
    for layer in layers:
        inputs.append(arr(N, *shape))
        shape = layer.build(shape)
        params.append({"kernel": arr(*layer.param_specs()["kernel"][0]), "bias": arr(layer.filters)}
                      if isinstance(layer, Conv2D) else {})
    conv1.needs_input_grad = False
    grads_out = [arr(N, *layer.output_shape) for layer in layers]
    torch_inputs, torch_grads = list(inputs), list(grads_out)
    # portanet's inputs and output gradients as its own stack produces them (values and layout)
    x, caches = inputs[0], []
    for i, (layer, p) in enumerate(zip(layers, params)):
        inputs[i] = x
        x, cache = layer.forward(p, x, training=True)
        caches.append(cache)
    dy = grads_out[-1]
    for i in range(len(layers) - 1, -1, -1):
        grads_out[i] = dy
        dy, _ = layers[i].backward(params[i], caches[i], dy)

    def ours(i):
        layer, p, x, dy = layers[i], params[i], inputs[i], grads_out[i]
        def step():
            _, cache = layer.forward(p, x, training=True)
            layer.backward(p, cache, dy)
        return step

    def ours_stack():
        x, caches = inputs[0], []
        for layer, p in zip(layers, params):
            x, cache = layer.forward(p, x, training=True)
            caches.append(cache)
        dy = grads_out[-1]
        for layer, p, cache in zip(layers[::-1], params[::-1], caches[::-1]):
            dy, _ = layer.backward(p, cache, dy)

    t = [torch.from_numpy(a) for a in torch_inputs]
    tw = [(torch.from_numpy(p["kernel"]).requires_grad_(), torch.from_numpy(p["bias"]).requires_grad_())
          if p else None for p in params]
    tdy = [torch.from_numpy(g) for g in torch_grads]
    tx = [t[0]] + [a.clone().requires_grad_() for a in t[1:]]

    def torch_op(i, x):
        return F.conv2d(x, *tw[i]) if tw[i] is not None else F.max_pool2d(x, 2)

    def theirs(i):
        def step():
            torch_op(i, tx[i]).backward(tdy[i])
        return step

    def theirs_stack():
        x = tx[0]
        for i in range(4):
            x = torch_op(i, x)
        x.backward(tdy[-1])

    def ours_portable(fn):
        def step():
            with B.portable():
                fn()
        return step

    rows = [(layer.name, ours(i), theirs(i)) for i, layer in enumerate(layers)]
    rows.append(("stack", ours_stack, theirs_stack))
    results = {name: ([], [], []) for name, _, _ in rows}
    for _ in range(args.rounds):
        for name, mine, peer in rows:
            a, b, c = results[name]
            a.append(timed(mine, args.iters))
            b.append(timed(ours_portable(mine), args.iters))
            c.append(timed(peer, args.iters))

    print(f"LeNet-5 conv/pool layers, forward+backward, batch {N}, float32; median of {args.rounds} "
          f"rounds x {args.iters}; torch threads {args.threads}; numpy {np.__version__}, torch {torch.__version__}")
    for label, stat in (("best", min), ("median", statistics.median)):
        print(f"\n{label} of rounds, ms per forward+backward; ratio = portanet / torch")
        print(f"{'layer':8} {'portanet':>10} {'portable':>10} {'torch':>10} {'ratio':>7} {'portable ratio':>15}")
        for name, _, _ in rows:
            a, b, c = (stat(v) * 1e3 for v in results[name])
            print(f"{name:8} {a:10.2f} {b:10.2f} {c:10.2f} {a / c:7.2f} {b / c:15.2f}")
    random_numbers()


def random_numbers(n=10**7):
    """Prints the time for n float32 uniforms of portanet.random (NumPy backend) next to NumPy's
    own generator (portanet's are the same bits on every backend; NumPy's are not)."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    rng.random(n, dtype=np.float32)
    theirs = time.perf_counter() - start
    with B.use("numpy") as b:
        start = time.perf_counter()
        b.to_numpy(random.uniform(random.key(0), (n,)))
        ours = time.perf_counter() - start
    print(f"\n{n:.0e} float32 uniforms: portanet (numpy) {ours:.3f} s, numpy.random {theirs:.3f} s, "
          f"ratio {ours / theirs:.1f}")


if __name__ == "__main__":
    main()
