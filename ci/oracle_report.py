"""Print how far portanet is from the independent oracles, in float64 (the figures for the notes).

    python ci/oracle_report.py

Layers: forward output, dx and parameter gradients of each layer (numpy backend, float64) against
jax.vjp of JAX's own primitives and against torch autograd; max absolute and max relative error
(|ours - oracle| / max |oracle|) over all of them. Optimizers: the 50-step trajectories of
tests/test_optimizers.py against torch.optim and optax (max |ours - oracle| / max |oracle|).
Oracles that are not installed are skipped with a line saying so.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from portanet import backend as B  # noqa: E402
from portanet import ops, random  # noqa: E402
from portanet.layers import AveragePooling2D, Conv2D, Dense, MaxPool2D  # noqa: E402

rng = np.random.default_rng(0)


def ours(layer, x, seed=1):
    """(outputs, dx, grads) of `layer` on x at float64 with dL/dy = a fixed random dy."""
    with B.use("numpy", floatx="float64"):
        layer.build(x.shape[1:])
        params = {k: np.asarray(v) for k, v in layer.init(random.key(seed)).items()}
        y, cache = layer.forward(params, x)
        dy = np.random.default_rng(seed).standard_normal(y.shape)
        dx, grads = layer.backward(params, cache, dy)
    return params, dy, [y, dx, *(grads[k] for k in sorted(grads))]


def errors(mine, theirs):
    abs_err = max(float(np.max(np.abs(a - np.asarray(b)))) for a, b in zip(mine, theirs))
    rel_err = max(float(np.max(np.abs(a - np.asarray(b))) / max(np.max(np.abs(np.asarray(b))), 1e-300))
                  for a, b in zip(mine, theirs))
    return abs_err, rel_err


def layer_cases():
    x_dense, x_img = rng.standard_normal((16, 30)), rng.standard_normal((8, 3, 12, 12))
    return [("Dense(20, tanh)", lambda: Dense(20, activation="tanh", bias_initializer="random_normal"), x_dense),
            ("Conv2D(5, 3, same, strides 2)", lambda: Conv2D(5, 3, strides=2, padding="same",
                                                             bias_initializer="random_normal"), x_img),
            ("Conv2D(6, 5) (LeNet conv1)", lambda: Conv2D(6, 5, bias_initializer="random_normal"), x_img),
            ("MaxPool2D(2)", lambda: MaxPool2D(2), x_img),
            ("MaxPool2D(3, strides 2) overlapping", lambda: MaxPool2D(3, strides=2), x_img),
            ("AveragePooling2D(3, strides 2, same)", lambda: AveragePooling2D(3, strides=2, padding="same"), x_img)]


def jax_oracle(layer, params, x, dy):
    import jax
    jnp = jax.numpy
    if isinstance(layer, Dense):
        def f(x, b, k):
            return jnp.tanh(x @ k + b)
        args = (x, params["bias"], params["kernel"])
    elif isinstance(layer, Conv2D):
        pads = ops.resolve_padding(layer.padding, x.shape[2:], layer.kernel_size, layer.strides)

        def f(x, b, k):
            z = jax.lax.conv_general_dilated(x, k, layer.strides, pads, dimension_numbers=("NCHW", "OIHW", "NCHW"))
            return z + b[None, :, None, None]
        args = (x, params["bias"], params["kernel"])
    else:
        pads = ops.resolve_padding(layer.padding, x.shape[2:], layer.pool_size, layer.strides)
        window, strides, padding = (1, 1, *layer.pool_size), (1, 1, *layer.strides), ((0, 0), (0, 0), *pads)
        if isinstance(layer, MaxPool2D):
            def f(x):
                return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, padding)
        else:
            def f(x):
                total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
                count = jax.lax.reduce_window(jnp.ones_like(x), 0.0, jax.lax.add, window, strides, padding)
                return total / count
        args = (x,)
    with B.use("jax", floatx="float64"):
        y, vjp = jax.vjp(f, *(jnp.asarray(a) for a in args))
        return [y, *vjp(jnp.asarray(dy))]


def torch_oracle(layer, params, x, dy):
    import torch
    F = torch.nn.functional
    tx = torch.tensor(x, requires_grad=True)
    leaves = [tx]
    if isinstance(layer, Dense):
        tb, tk = (torch.tensor(params[k], requires_grad=True) for k in ("bias", "kernel"))
        leaves += [tb, tk]
        y = torch.tanh(tx @ tk + tb)
    else:
        pool = getattr(layer, "pool_size", None)
        pads = ops.resolve_padding(layer.padding, x.shape[2:], pool or layer.kernel_size, layer.strides)
        (top, bottom), (left, right) = pads
        padded = F.pad(tx, (left, right, top, bottom), value=-np.inf if isinstance(layer, MaxPool2D) else 0.0)
        if isinstance(layer, Conv2D):
            tb, tk = (torch.tensor(params[k], requires_grad=True) for k in ("bias", "kernel"))
            leaves += [tb, tk]
            y = F.conv2d(padded, tk, tb, stride=layer.strides)
        elif isinstance(layer, MaxPool2D):
            y = F.max_pool2d(padded, pool, layer.strides)
        else:
            ones = F.pad(torch.ones_like(tx), (left, right, top, bottom))
            y = F.avg_pool2d(padded, pool, layer.strides) / F.avg_pool2d(ones, pool, layer.strides)
    y.backward(torch.tensor(dy))
    return [y.detach().numpy(), *(leaf.grad.numpy() for leaf in leaves)]


def installed(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def layer_report():
    oracles = [(name, fn) for name, fn in (("jax", jax_oracle), ("torch", torch_oracle)) if installed(name)]
    print(f"\n{'layer (float64)':40s}" + "".join(f"{name + ' max abs':>16s}{name + ' max rel':>16s}"
                                              for name, _ in oracles))
    for label, make, x in layer_cases():
        layer = make()
        params, dy, mine = ours(layer, x)
        row = f"{label:40s}"
        for _, oracle in oracles:
            row += "".join(f"{e:16.2e}" for e in errors(mine, oracle(layer, params, x, dy)))
        print(row)


def optimizer_report():
    import test_optimizers as T
    print(f"\n{'optimizer setting (float64, 50 steps)':40s}{'torch.optim':>16s}{'optax':>16s}")
    for param in T.SETTINGS:
        s = param.values[0]
        params, grads = T.problem()
        result = T._ours_float64(s, params, grads)
        row = f"{s['id']:40s}"
        for runner, key, module in ((T.run_torch, "torch", "torch"), (T.run_optax, "optax", "optax")):
            if s[key] is None or not installed(module):
                row += f"{'-':>16s}"
            else:
                row += f"{T.max_relative_deviation(result, runner(s, params, grads)):16.2e}"
        print(row)


def main():
    import portanet
    print(f"portanet {portanet.__version__}; '-' or a missing column: no such setting in that library")
    for module in ("jax", "torch", "optax"):
        if not installed(module):
            print(f"{module} not installed: its oracle is skipped")
    layer_report()
    optimizer_report()


if __name__ == "__main__":
    main()
