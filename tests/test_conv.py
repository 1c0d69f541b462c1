"""Conv2D: finite differences, every backend against NumPy float64, fast paths against the
portable code, and PyTorch / jax.lax as independent oracles."""
import numpy as np
import pytest

from portanet import backend as B
from portanet import ops, random
from portanet.errors import InvalidArgumentError
from portanet.layers import Conv2D

from helpers import assert_matches_reference, check_layer_gradients, to_device, to_host

rng = np.random.default_rng(0)

# (filters, kernel_size, strides, padding, input shape (N, C, H, W))
CASES = [
    (3, 3, 1, "valid", (2, 2, 6, 5)),
    (4, (3, 2), (2, 1), "same", (2, 3, 7, 6)),
    (2, 5, 1, "same", (1, 1, 8, 8)),
    (3, 3, 2, 1, (2, 2, 7, 7)),
    (2, (2, 3), (1, 2), ((1, 0), (2, 1)), (3, 2, 5, 6)),
    (2, 4, 3, "valid", (1, 3, 11, 10)),
]


def built(filters, kernel_size, strides, padding, shape, **kwargs):
    layer = Conv2D(filters, kernel_size, strides=strides, padding=padding, **kwargs)
    layer.build(shape[1:])
    return layer


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("activation, use_bias", [(None, True), ("tanh", False)])
def test_conv_gradients(float64, case, activation, use_bias):
    *config, shape = case
    layer = built(*config, shape, activation=activation, use_bias=use_bias, bias_initializer="random_normal")
    check_layer_gradients(layer, rng.standard_normal(shape))


@pytest.mark.parametrize("case", CASES)
def test_conv_matches_reference_on_every_backend(backend, case):
    *config, shape = case
    x = rng.standard_normal(shape)

    def run(x):
        layer = built(*config, shape, bias_initializer="random_normal")
        with B.use("numpy", floatx=B.floatx()) as host:
            params = {k: host.to_numpy(v) for k, v in layer.init(random.key(2)).items()}
        params = to_device(params, dtype=B.get().float_dtype())
        y, cache = layer.forward(params, x)
        dy = B.get().asarray(np.random.default_rng(4).standard_normal(tuple(y.shape)), dtype=B.get().float_dtype())
        return [y, *layer.backward(params, cache, dy)]

    assert_matches_reference(backend, run, x)


@pytest.mark.parametrize("case", CASES)
def test_fast_paths_match_portable_code(float64, case):
    if not {"conv2d_forward", "im2col", "col2im"} & set(B.get().fast):
        pytest.skip(f"the {B.get().name} backend has no convolution fast path")
    filters, kernel_size, strides, padding, shape = case
    layer = built(filters, kernel_size, strides, padding, shape)
    x = to_device(rng.standard_normal(shape))
    kernel = to_device(rng.standard_normal((filters, shape[1], *layer.kernel_size)))
    bias = to_device(rng.standard_normal(filters))
    pads = ops.resolve_padding(layer.padding, shape[2:], layer.kernel_size, layer.strides)

    def both():
        z, cache = ops.conv2d_forward(x, kernel, bias, layer.strides, pads)
        dz = to_device(np.random.default_rng(1).standard_normal(tuple(z.shape)))
        return to_host([z, *ops.conv2d_backward(kernel, cache, dz, layer.strides, pads)])

    fast = both()
    with B.portable():
        portable = both()
    for f, p in zip(fast, portable):
        np.testing.assert_allclose(f, p, rtol=1e-12, atol=1e-12)


def test_im2col_col2im_are_adjoint(float64):
    """<im2col(x), c> == <x, col2im(c)> for the fast and the portable versions."""
    x = rng.standard_normal((2, 3, 7, 6))
    pads, kernel, strides = ((1, 2), (0, 1)), (3, 2), (2, 1)
    for context in (B.portable, lambda: B.use(B.get().name)):
        with context():
            cols = to_host(ops.im2col(to_device(x), kernel, strides, pads))
            c = rng.standard_normal(cols.shape)
            back = to_host(ops.col2im(to_device(c), x.shape, kernel, strides, pads))
        assert abs(np.sum(cols * c) - np.sum(x * back)) < 1e-10 * np.abs(cols * c).sum()


def _torch_padding(pads):
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom)


@pytest.mark.parametrize("case", CASES)
def test_conv_against_torch_and_jax(case):
    filters, kernel_size, strides, padding, shape = case
    x = rng.standard_normal(shape)
    with B.use("numpy", floatx="float64"):
        layer = built(filters, kernel_size, strides, padding, shape, bias_initializer="random_normal")
        params = {k: np.asarray(v) for k, v in layer.init(random.key(3)).items()}
        y, cache = layer.forward(params, x)
        dy = rng.standard_normal(y.shape)
        dx, grads = layer.backward(params, cache, dy)
    pads = ops.resolve_padding(layer.padding, shape[2:], layer.kernel_size, layer.strides)
    oracles = 0
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        tx, tk, tb = (torch.tensor(a, requires_grad=True) for a in (x, params["kernel"], params["bias"]))
        ty = torch.nn.functional.conv2d(torch.nn.functional.pad(tx, _torch_padding(pads)), tk, tb, stride=strides)
        ty.backward(torch.tensor(dy))
        for ours, ref in zip((y, dx, grads["kernel"], grads["bias"]), (ty, tx.grad, tk.grad, tb.grad)):
            np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
        oracles += 1
    try:
        import jax
    except ImportError:
        jax = None
    if jax is not None:
        with B.use("jax", floatx="float64"):
            jnp = jax.numpy

            def conv(x, k, b):
                z = jax.lax.conv_general_dilated(x, k, layer.strides, pads, dimension_numbers=("NCHW", "OIHW", "NCHW"))
                return z + b[None, :, None, None]

            y_ref, vjp = jax.vjp(conv, *(jnp.asarray(a) for a in (x, params["kernel"], params["bias"])))
            for ours, ref in zip((y, dx, grads["kernel"], grads["bias"]), (y_ref, *vjp(jnp.asarray(dy)))):
                np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-10, atol=1e-12)
        oracles += 1
    if not oracles:
        pytest.skip("neither torch nor jax installed")


def test_same_padding_follows_keras():
    # TensorFlow rule: out = ceil(n / s); the odd padding row goes at the bottom/right.
    assert ops.same_padding(7, 3, 2) == (1, 1)
    assert ops.same_padding(6, 3, 2) == (0, 1)
    assert ops.same_padding(5, 4, 1) == (1, 2)
    assert Conv2D(4, 3, strides=2, padding="same").build((1, 7, 6)) == (4, 4, 3)
    assert Conv2D(6, 5).build((1, 32, 32)) == (6, 28, 28)
    assert Conv2D(2, 3, padding=1).build((3, 5, 5)) == (2, 5, 5)


def test_first_layer_skips_dx():
    with B.use("numpy", floatx="float64"):
        layer = built(2, 3, 1, "valid", (1, 1, 5, 5))
        layer.needs_input_grad = False
        params = layer.init(random.key(0))
        y, cache = layer.forward(params, rng.standard_normal((1, 1, 5, 5)))
        dx, grads = layer.backward(params, cache, np.ones(y.shape))
    assert dx is None and set(grads) == {"kernel", "bias"}


def test_conv_errors():
    with pytest.raises(InvalidArgumentError, match="Received: filters=0"):
        Conv2D(0, 3)
    with pytest.raises(InvalidArgumentError, match="kernel_size"):
        Conv2D(2, (3, 0))
    with pytest.raises(InvalidArgumentError, match="strides"):
        Conv2D(2, 3, strides=-1)
    with pytest.raises(InvalidArgumentError, match="padding"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(InvalidArgumentError, match="padding"):
        Conv2D(2, 3, padding=-1)
    with pytest.raises(InvalidArgumentError, match="kernel_size.*padded input"):
        Conv2D(2, 7).build((1, 5, 5))
    with pytest.raises(InvalidArgumentError, match="channels, height, width"):
        Conv2D(2, 3).build((28, 28))


def test_config_roundtrip():
    layer = Conv2D(4, (3, 2), strides=2, padding=((1, 0), (0, 1)), activation="relu", name="c")
    clone = Conv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.padding == ((1, 0), (0, 1)) and clone.kernel_size == (3, 2)
