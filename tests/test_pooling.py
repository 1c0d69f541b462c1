"""MaxPool2D and AveragePooling2D: finite differences, first-maximum rule on ties, every backend,
fast paths against the portable code, and PyTorch / jax.lax as oracles."""
import numpy as np
import pytest

from portanet import backend as B
from portanet import ops
from portanet.errors import InvalidArgumentError
from portanet.layers import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D

from helpers import assert_matches_reference, check_layer_gradients, to_device, to_host

rng = np.random.default_rng(0)

# (pool_size, strides, padding, input shape)
CASES = [
    (2, None, "valid", (2, 3, 6, 6)),
    (2, None, "valid", (1, 2, 7, 5)),         # odd sizes: the last row/column is dropped
    (3, 2, "valid", (2, 2, 7, 7)),            # overlapping windows
    (3, 1, "same", (1, 2, 5, 6)),
    ((2, 3), (1, 2), "same", (2, 1, 5, 7)),
    (2, None, "same", (1, 2, 5, 5)),          # padded last window
]
LAYERS = [MaxPool2D, AveragePooling2D]


def built(cls, pool_size, strides, padding, shape):
    layer = cls(pool_size, strides=strides, padding=padding)
    layer.build(shape[1:])
    return layer


def distinct(shape):
    """Values without ties (a max-pool derivative is not defined at ties)."""
    return rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) - 0.5


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("case", CASES)
def test_pool_gradients(float64, cls, case):
    *config, shape = case
    check_layer_gradients(built(cls, *config, shape), distinct(shape), atol=1e-7)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("case", CASES)
def test_pool_matches_reference_on_every_backend(backend, cls, case):
    *config, shape = case
    x = distinct(shape)

    def run(x):
        layer = built(cls, *config, shape)
        y, cache = layer.forward({}, x)
        dy = B.get().asarray(np.random.default_rng(4).standard_normal(tuple(y.shape)), dtype=B.get().float_dtype())
        return [y, layer.backward({}, cache, dy)[0]]

    assert_matches_reference(backend, run, x)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_maxpool_fast_path_matches_portable_code(float64, case, ties):
    if "maxpool2d_forward" not in B.get().fast:
        pytest.skip(f"the {B.get().name} backend has no max-pool fast path")
    pool, strides, padding, shape = case
    layer = built(MaxPool2D, pool, strides, padding, shape)
    x = np.round(rng.standard_normal(shape)) if ties else distinct(shape)
    pads = ops.resolve_padding(layer.padding, shape[2:], layer.pool_size, layer.strides)

    def both():
        y, cache = ops.maxpool2d_forward(to_device(x), layer.pool_size, layer.strides, pads)
        dy = to_device(np.random.default_rng(1).standard_normal(tuple(y.shape)))
        return to_host([y, ops.maxpool2d_backward(cache, dy, layer.pool_size, layer.strides, pads)])

    fast = both()
    with B.portable():
        portable = both()
    for f, p in zip(fast, portable):
        np.testing.assert_allclose(f, p, rtol=1e-13, atol=0)   # overlapping windows: summation order


def test_maxpool_gradient_goes_to_first_maximum(backend):
    x = np.zeros((1, 1, 4, 4), np.float32)           # every window is a tie
    layer = built(MaxPool2D, 2, None, "valid", x.shape)
    y, cache = layer.forward({}, backend.asarray(x))
    dx = backend.to_numpy(layer.backward({}, cache, backend.asarray(np.ones((1, 1, 2, 2), np.float32)))[0])
    expected = np.zeros((4, 4), np.float32)
    expected[::2, ::2] = 1.0                          # the top-left element of each window
    np.testing.assert_array_equal(dx[0, 0], expected)
    # overlapping windows: a shared maximum collects the gradient of every window it wins
    x = np.array([[[[0, 0, 0], [0, 5, 0], [0, 0, 0]]]], np.float32)
    layer = built(MaxPool2D, 2, 1, "valid", x.shape)
    y, cache = layer.forward({}, backend.asarray(x))
    dx = backend.to_numpy(layer.backward({}, cache, backend.asarray(np.ones((1, 1, 2, 2), np.float32)))[0])
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_pool_against_torch(cls, case, ties):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    pool, strides, padding, shape = case
    x = np.round(rng.standard_normal(shape)) if ties else distinct(shape)
    with B.use("numpy", floatx="float64"):
        layer = built(cls, pool, strides, padding, shape)
        y, cache = layer.forward({}, x)
        dy = rng.standard_normal(y.shape)
        dx, _ = layer.backward({}, cache, dy)
    (top, bottom), (left, right) = ops.resolve_padding(layer.padding, shape[2:], layer.pool_size, layer.strides)
    tx = torch.tensor(x, requires_grad=True)
    if cls is MaxPool2D:
        padded = F.pad(tx, (left, right, top, bottom), value=-float("inf"))
        ty = F.max_pool2d(padded, layer.pool_size, layer.strides)
    else:   # Keras divides by the real (unpadded) elements: sum of padded zeros / count of ones
        ones = F.pad(torch.ones_like(tx), (left, right, top, bottom))
        padded = F.pad(tx, (left, right, top, bottom))
        ty = F.avg_pool2d(padded, layer.pool_size, layer.strides) / F.avg_pool2d(ones, layer.pool_size, layer.strides)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", CASES)
def test_maxpool_against_jax(case):
    jax = pytest.importorskip("jax")
    pool, strides, padding, shape = case
    x = distinct(shape)
    with B.use("numpy", floatx="float64"):
        layer = built(MaxPool2D, pool, strides, padding, shape)
        y, cache = layer.forward({}, x)
        dy = rng.standard_normal(y.shape)
        dx, _ = layer.backward({}, cache, dy)
    pads = ops.resolve_padding(layer.padding, shape[2:], layer.pool_size, layer.strides)
    with B.use("jax", floatx="float64"):
        def maxpool(x):
            return jax.lax.reduce_window(x, -np.inf, jax.lax.max, (1, 1, *layer.pool_size),
                                         (1, 1, *layer.strides), ((0, 0), (0, 0), *pads))
        y_ref, vjp = jax.vjp(maxpool, jax.numpy.asarray(x))
        np.testing.assert_allclose(y, np.asarray(y_ref), rtol=1e-12)
        np.testing.assert_allclose(dx, np.asarray(vjp(jax.numpy.asarray(dy))[0]), rtol=1e-12, atol=1e-14)


def test_aliases_shapes_and_errors():
    assert MaxPooling2D is MaxPool2D and AvgPool2D is AveragePooling2D
    assert MaxPool2D().build((6, 28, 28)) == (6, 14, 14)
    assert MaxPool2D(3, strides=2).build((1, 7, 7)) == (1, 3, 3)
    assert AveragePooling2D(2, padding="same").build((2, 5, 5)) == (2, 3, 3)
    with pytest.raises(InvalidArgumentError, match="pool_size"):
        MaxPool2D(0)
    with pytest.raises(InvalidArgumentError, match="padding"):
        MaxPool2D(2, padding=1)
    with pytest.raises(InvalidArgumentError, match="pool_size.*padded input"):
        MaxPool2D(4).build((1, 3, 3))
    clone = AveragePooling2D.from_config(AveragePooling2D((2, 3), strides=1, padding="same").get_config())
    assert (clone.pool_size, clone.strides, clone.padding) == ((2, 3), (1, 1), "same")
