"""Core layers, activations, initializers and regularizers: gradients, backends, oracles, errors."""
import numpy as np
import pytest

import portanet as pn
from portanet import activations, initializers, random, regularizers
from portanet import backend as B
from portanet.errors import InvalidArgumentError, InvalidTypeError
from portanet.layers import Activation, Add, Concatenate, Dense, Dropout, Flatten, Reshape

from helpers import assert_matches_reference, check_layer_gradients, directional_check, to_device, to_host

rng = np.random.default_rng(0)
ACTIVATIONS = activations.REGISTRY.valid_names()


@pytest.mark.parametrize("shape", [(1, 3), (5, 4), (2, 3, 4)])
@pytest.mark.parametrize("activation", [None, "relu", "tanh", "softmax", "sigmoid"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients(float64, shape, activation, use_bias):
    layer = Dense(3, activation=activation, use_bias=use_bias, kernel_initializer="random_normal",
                  bias_initializer="random_normal")
    assert layer.build(shape[1:]) == (*shape[1:-1], 3)
    check_layer_gradients(layer, rng.standard_normal(shape))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients(float64, name):
    layer = Activation(name)
    layer.build((7,))
    check_layer_gradients(layer, rng.standard_normal((4, 7)) * 3)


def test_activation_parameters_gradients(float64):
    for act in (activations.LeakyReLU(0.1), activations.ELU(0.5), activations.Softmax(axis=1)):
        layer = Activation(act)
        layer.build((3, 5))
        check_layer_gradients(layer, rng.standard_normal((2, 3, 5)))


def test_stable_sigmoid_and_softmax(backend):
    z = backend.asarray(np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]], np.float32))
    s = backend.to_numpy(activations.sigmoid(z))
    assert np.all(np.isfinite(s)) and s[0, 0] == 0.0 and s[0, -1] == 1.0 and s[0, 2] == 0.5
    p = backend.to_numpy(activations.softmax(z))
    assert np.all(np.isfinite(p)) and abs(p.sum() - 1) < 1e-6 and p[0, -1] == 1.0
    sp = backend.to_numpy(activations.softplus(z))
    assert np.all(np.isfinite(sp)) and sp[0, -1] == 1000.0


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_against_jax(name):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    reference = {"linear": lambda z: z, "relu": jax.nn.relu, "leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.2),
                 "elu": jax.nn.elu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "softplus": jax.nn.softplus,
                 "softmax": lambda z: jax.nn.softmax(z, axis=-1), "gelu": lambda z: jax.nn.gelu(z, approximate=False),
                 "hard_sigmoid": lambda z: jax.nn.relu6(z + 3) / 6, "log_softmax": jax.nn.log_softmax,
                 "selu": jax.nn.selu, "silu": jax.nn.silu, "swish": jax.nn.silu, "softsign": jax.nn.soft_sign}[name]
    z = rng.standard_normal((4, 6))
    dy = rng.standard_normal((4, 6))
    with B.use("numpy", floatx="float64"):
        act = activations.get(name)
        y = act(z)
        dz = act.backward(dy, z, y)
    with B.use("jax", floatx="float64"):
        y_ref, vjp = jax.vjp(reference, jnp.asarray(z))
        np.testing.assert_allclose(y, np.asarray(y_ref), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dz, np.asarray(vjp(jnp.asarray(dy))[0]), rtol=1e-10, atol=1e-13)


def test_dense_against_jax_and_torch():
    jax = pytest.importorskip("jax")
    x, w, b, dy = (rng.standard_normal(s) for s in [(6, 5), (5, 4), (4,), (6, 4)])
    with B.use("numpy", floatx="float64"):
        layer = Dense(4, activation="tanh")
        layer.build((5,))
        params = {"kernel": w, "bias": b}
        y, cache = layer.forward(params, x)
        dx, grads = layer.backward(params, cache, dy)
    with B.use("jax", floatx="float64"):
        y_ref, vjp = jax.vjp(lambda x, w, b: jax.numpy.tanh(x @ w + b), *map(jax.numpy.asarray, (x, w, b)))
        for ours, ref in zip((y, dx, grads["kernel"], grads["bias"]), (y_ref, *vjp(jax.numpy.asarray(dy)))):
            np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-12, atol=1e-13)
    torch = pytest.importorskip("torch")
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w.T.copy(), b))
    ty = torch.tanh(torch.nn.functional.linear(tx, tw, tb))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads["kernel"], tw.grad.numpy().T, rtol=1e-10)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("layer_and_shape", [
    (lambda: Dense(7, activation="relu"), (3, 5)),
    (lambda: Dense(2, activation="softmax"), (4, 3, 6)),
    (lambda: Flatten(), (2, 3, 4, 5)),
    (lambda: Reshape((4, -1)), (2, 12)),
    (lambda: Activation("elu"), (3, 8)),
])
def test_layers_match_reference_on_every_backend(backend, layer_and_shape):
    make, shape = layer_and_shape
    x = rng.standard_normal(shape)

    def run(x, dy_seed=3):
        layer = make()
        layer.build(shape[1:])
        with B.use("numpy", floatx=B.floatx()) as host:
            params = {k: host.to_numpy(v) for k, v in layer.init(random.key(1)).items()}
        params = to_device(params, dtype=B.get().float_dtype())
        y, cache = layer.forward(params, x)
        dy = B.get().asarray(np.random.default_rng(dy_seed).standard_normal(tuple(y.shape)),
                             dtype=B.get().float_dtype())
        return [y, *layer.backward(params, cache, dy)]

    assert_matches_reference(backend, run, x)


def test_dropout_masks_and_scaling(backend):
    layer = Dropout(0.25)
    layer.build((1000,))
    x = backend.asarray(np.ones((8, 1000), np.float32))
    y, keep = layer.forward({}, x, training=True, key=random.key(3))
    y = backend.to_numpy(y)
    with B.use("numpy"):
        y_ref = B.get().to_numpy(layer.forward({}, np.ones((8, 1000), np.float32), training=True,
                                               key=random.key(3))[0])
    np.testing.assert_array_equal(y, y_ref)  # the same units dropped on every backend
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    dx, _ = layer.backward({}, keep, backend.asarray(np.ones((8, 1000), np.float32)))
    np.testing.assert_array_equal(backend.to_numpy(dx), y)
    same, _ = layer.forward({}, x, training=False)
    np.testing.assert_array_equal(backend.to_numpy(same), 1.0)
    with pytest.raises(InvalidArgumentError, match="key"):
        layer.forward({}, x, training=True)


def test_add_and_concatenate(float64):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    add = Add()
    assert add.build([(3,), (3,)]) == (3,)
    y, n = add.forward({}, to_device([a, b]))
    np.testing.assert_allclose(to_host(y), a + b)
    assert len(add.backward({}, n, y)[0]) == 2
    cat = Concatenate()
    assert cat.build([(3,), (2,)]) == (5,)
    c = rng.standard_normal((2, 2))
    y, sizes = cat.forward({}, to_device([a, c]))
    da, dc = to_host(cat.backward({}, sizes, y)[0])
    np.testing.assert_allclose(da, a)
    np.testing.assert_allclose(dc, c)


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                                  "random_normal", "random_uniform", "zeros", "ones"])
def test_initializers_same_everywhere(backend, name):
    init = initializers.get(name)
    with B.use("numpy"):
        expected = B.get().to_numpy(init(random.key(5), (30, 20)))
    got = backend.to_numpy(init(random.key(5), (30, 20)))
    assert got.dtype == np.float32
    # the same bits; log, cos and sqrt of CUDA and NumPy may each differ by an ulp or two
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7)


def test_initializer_statistics():
    with B.use("numpy"):
        w = initializers.get("glorot_uniform")(random.key(0), (400, 600))
        limit = np.sqrt(6 / 1000)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
        w = initializers.get("he_normal")(random.key(0), (16, 6, 5, 5))  # conv kernel: fan_in 150
        assert abs(w.std() - np.sqrt(2 / 150)) < 0.01 * 2
        assert initializers.fans((16, 6, 5, 5)) == (150, 400)


def test_regularizers(float64):
    w = rng.standard_normal((4, 3))
    reg = regularizers.l1_l2(l1=0.01, l2=0.1)
    penalty = float(to_host(reg.penalty(to_device(w))))
    assert abs(penalty - (0.01 * np.abs(w).sum() + 0.1 * (w ** 2).sum())) < 1e-12
    directional_check(lambda t: float(to_host(reg.penalty(to_device(t)))), w, to_host(reg.gradient(to_device(w))))
    assert regularizers.get(None) is None
    with pytest.raises(InvalidArgumentError, match="Received: l2=-1"):
        regularizers.l2(-1)


@pytest.mark.parametrize("make, match", [
    (lambda: Dense(-1), "Received: units=-1"),
    (lambda: Dense(0), "Received: units=0"),
    (lambda: Dense(2.5), "Received: units=2.5"),
    (lambda: Dense(3, activation="relux"), "Received: activation='relux'"),
    (lambda: Dense(3, kernel_initializer="nope"), "Received: initializer='nope'"),
    (lambda: Dropout(1.0), "Received: rate=1.0"),
    (lambda: Dropout(-0.1), "Received: rate=-0.1"),
    (lambda: Reshape((0, 2)), "target_shape"),
    (lambda: Concatenate(axis=0), "Received: axis=0"),
    (lambda: pn.Input((0, 3)), "Received: shape=\\(0, 3\\)"),
])
def test_bad_configuration(make, match):
    with pytest.raises((InvalidArgumentError, InvalidTypeError), match=match):
        make()


def test_bad_shapes_at_build():
    with pytest.raises(InvalidArgumentError, match="input_shape"):
        Dense(3).build(())
    with pytest.raises(InvalidArgumentError, match="target_shape"):
        Reshape((5, 5)).build((12,))
    with pytest.raises(InvalidArgumentError, match="equal shapes"):
        Add().build([(3,), (4,)])
    with pytest.raises(InvalidTypeError, match="Activation"):
        Dense(3, activation=lambda z: z)


def test_layer_weights_roundtrip(backend):
    layer = Dense(2)
    layer(backend.asarray(np.ones((1, 3), np.float32)))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 2) and bias.shape == (2,)
    layer.set_weights([np.ones((3, 2)), np.zeros(2)])
    np.testing.assert_array_equal(layer.get_weights()[0], 1.0)
    with pytest.raises(InvalidArgumentError, match="Expected shape \\(3, 2\\)"):
        layer.set_weights([np.ones((2, 2)), np.zeros(2)])
