"""The Keras-surface layers: every one checked by pn.testing.check_layer (finite differences in
float64 and the same results on every backend), against an independent oracle (jax autodiff over
lax and jax.numpy, PyTorch where it has the layer), and through get_config / from_config."""
import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet import random
from portanet.layers import (ELU, Activation, Add, AveragePooling1D, Average, BatchNormalization, Concatenate,
                             Conv1D, Conv2D, Conv2DTranspose, Cropping2D, Dot, Embedding, GlobalAveragePooling1D,
                             GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, LayerNormalization,
                             LeakyReLU, MaxPooling1D, MaxPooling2D, Maximum, Minimum, Multiply, Normalization,
                             PReLU, ReLU, Rescaling, Softmax, Subtract, UpSampling2D, ZeroPadding2D)
from portanet.tree import tree_map

jax = pytest.importorskip("jax")
jnp, lax = jax.numpy, jax.lax


def conv(x, kernel, strides, padding, dilation=(1, 1), groups=1, spec=("NCHW", "OIHW", "NCHW")):
    return lax.conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation, feature_group_count=groups,
                                    dimension_numbers=spec)


def channels_last(fn):
    """An NCHW oracle for NHWC data."""
    return lambda p, x: jnp.transpose(fn(p, jnp.transpose(x, (0, 3, 1, 2))), (0, 2, 3, 1))


def conv_transpose(p, x, strides, padding, out):
    """The adjoint of the convolution by p["kernel"] (in, filters, kh, kw) from `out` to x's shape."""
    zeros = jnp.zeros((x.shape[0], p["kernel"].shape[1], *out))
    _, vjp = jax.vjp(lambda t: conv(t, p["kernel"], strides, padding), zeros)
    return vjp(x)[0] + p["bias"][None, :, None, None]


def normalized(x, axes, epsilon=1e-3):
    mean = jnp.mean(x, axis=axes, keepdims=True)
    return (x - mean) / jnp.sqrt(jnp.var(x, axis=axes, keepdims=True) + epsilon)


def pool1d(reduce, init, size):
    return lambda p, x: lax.reduce_window(x, init, reduce, (1, 1, size), (1, 1, size), "VALID")


# (id, layer factory, one example's shape, jax oracle (params, x) -> y, check_layer options)
SPECS = [
    ("conv2d-dilated-same", lambda: Conv2D(4, 3, dilation_rate=2, padding="same"), (2, 9, 8),
     lambda p, x: conv(x, p["kernel"], (1, 1), "SAME", (2, 2)) + p["bias"][None, :, None, None], {}),
    ("conv2d-groups", lambda: Conv2D(6, (3, 2), strides=(2, 1), groups=3), (3, 7, 6),
     lambda p, x: conv(x, p["kernel"], (2, 1), "VALID", groups=3) + p["bias"][None, :, None, None], {}),
    ("conv2d-depthwise-channels-last", lambda: Conv2D(4, 3, groups=4, data_format="channels_last", use_bias=False),
     (6, 5, 4), channels_last(lambda p, x: conv(x, p["kernel"], (1, 1), "VALID", groups=4)), {}),
    ("conv1d-causal", lambda: Conv1D(3, 3, padding="causal", dilation_rate=2), (2, 9),
     lambda p, x: conv(x, p["kernel"], (1,), [(4, 0)], (2,), spec=("NCH", "OIH", "NCH")) + p["bias"][None, :, None],
     {}),
    ("conv1d-channels-last", lambda: Conv1D(3, 4, strides=2, padding="same", data_format="channels_last"), (9, 2),
     lambda p, x: jnp.transpose(conv(jnp.transpose(x, (0, 2, 1)), p["kernel"], (2,), "SAME", (1,),
                                     spec=("NCH", "OIH", "NCH")) + p["bias"][None, :, None], (0, 2, 1)), {}),
    ("conv2d-transpose-valid", lambda: Conv2DTranspose(3, 3, strides=2), (2, 4, 5),
     lambda p, x: conv_transpose(p, x, (2, 2), "VALID", (9, 11)), {}),
    ("conv2d-transpose-same", lambda: Conv2DTranspose(3, (3, 2), strides=2, padding="same"), (2, 4, 5),
     lambda p, x: conv_transpose(p, x, (2, 2), "SAME", (8, 10)), {}),
    ("maxpool2d-channels-last", lambda: MaxPooling2D(2, data_format="channels_last"), (6, 7, 3),
     channels_last(lambda p, x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")), {}),
    ("maxpool1d", lambda: MaxPooling1D(3), (2, 10), pool1d(lax.max, -jnp.inf, 3), {}),
    ("avgpool1d", lambda: AveragePooling1D(2), (2, 9), lambda p, x: pool1d(lax.add, 0.0, 2)(p, x) / 2, {}),
    ("global-avg2d", lambda: GlobalAveragePooling2D(), (3, 4, 5), lambda p, x: jnp.mean(x, axis=(2, 3)), {}),
    ("global-max2d-keepdims", lambda: GlobalMaxPooling2D(keepdims=True, data_format="channels_last"), (4, 5, 3),
     lambda p, x: jnp.max(x, axis=(1, 2), keepdims=True), {}),
    ("global-avg1d-channels-last", lambda: GlobalAveragePooling1D(data_format="channels_last"), (6, 3),
     lambda p, x: jnp.mean(x, axis=1), {}),
    ("global-max1d", lambda: GlobalMaxPooling1D(), (3, 6), lambda p, x: jnp.max(x, axis=2), {}),
    ("zero-padding2d", lambda: ZeroPadding2D(((1, 2), (0, 3))), (2, 3, 4),
     lambda p, x: jnp.pad(x, ((0, 0), (0, 0), (1, 2), (0, 3))), {}),
    ("cropping2d", lambda: Cropping2D(((1, 0), (2, 1))), (2, 5, 6), lambda p, x: x[:, :, 1:, 2:-1], {}),
    ("upsampling2d", lambda: UpSampling2D((2, 3)), (2, 3, 4), lambda p, x: jnp.repeat(jnp.repeat(x, 2, 2), 3, 3), {}),
    ("batchnorm-training", lambda: BatchNormalization(), (3, 4, 5),
     lambda p, x: normalized(x, (0, 2, 3)) * p["gamma"][None, :, None, None] + p["beta"][None, :, None, None],
     {"training": True, "batch_size": 4}),
    ("batchnorm-inference", lambda: BatchNormalization(axis=-1, moving_mean_initializer="random_normal",
                                                       moving_variance_initializer="ones"), (5,),
     lambda p, x: (x - p["moving_mean"]) / jnp.sqrt(p["moving_variance"] + 1e-3) * p["gamma"] + p["beta"], {}),
    ("layernorm", lambda: LayerNormalization(gamma_initializer="random_normal", beta_initializer="random_normal"),
     (3, 6), lambda p, x: normalized(x, (2,)) * p["gamma"] + p["beta"], {}),
    ("layernorm-two-axes", lambda: LayerNormalization(axis=[1, 2]), (3, 4), lambda p, x: normalized(x, (1, 2))
     * p["gamma"] + p["beta"], {}),
    ("normalization", lambda: Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0]), (3,),
     lambda p, x: (x - jnp.array([0.5, -1.0, 2.0])) / jnp.array([2.0, 0.5, 1.0]), {}),
    ("rescaling", lambda: Rescaling(1 / 255, offset=-0.5), (4,), lambda p, x: x / 255 - 0.5, {}),
    ("embedding", lambda: Embedding(7, 3), (4,), lambda p, x: p["embeddings"][x.astype(jnp.int32)],
     {"integer_input": (0, 7)}),
    ("softmax-axis1", lambda: Softmax(axis=1), (3, 4), lambda p, x: jax.nn.softmax(x, axis=1), {}),
    ("relu-capped-leaky", lambda: ReLU(max_value=1.0, negative_slope=0.1, threshold=-0.5), (6,),
     lambda p, x: jnp.where(x >= 1.0, 1.0, jnp.where(x > -0.5, x, 0.1 * (x + 0.5))), {}),
    ("leaky-relu", lambda: LeakyReLU(), (5,), lambda p, x: jax.nn.leaky_relu(x, 0.3), {}),
    ("elu-layer", lambda: ELU(alpha=0.5), (5,), lambda p, x: jax.nn.elu(x, 0.5), {}),
    ("prelu-shared", lambda: PReLU(alpha_initializer="random_normal", shared_axes=[2, 3]), (3, 2, 4),
     lambda p, x: jnp.where(x > 0, x, p["alpha"] * x), {}),
    *[(f"activation-{name}", lambda name=name: Activation(name), (6,), oracle, {}) for name, oracle in [
        ("gelu", lambda p, x: jax.nn.gelu(x, approximate=False)),
        ("silu", lambda p, x: jax.nn.silu(x)), ("swish", lambda p, x: jax.nn.silu(x)),
        ("softsign", lambda p, x: jax.nn.soft_sign(x)), ("selu", lambda p, x: jax.nn.selu(x)),
        ("hard_sigmoid", lambda p, x: jax.nn.relu6(x + 3) / 6), ("log_softmax", lambda p, x: jax.nn.log_softmax(x)),
        ("softplus", lambda p, x: jax.nn.softplus(x)), ("elu", lambda p, x: jax.nn.elu(x))]],
    ("activation-gelu-tanh", lambda: Activation(pn.activations.GELU(approximate=True)), (6,),
     lambda p, x: jax.nn.gelu(x, approximate=True), {}),
]
MERGES = [
    ("add3", lambda: Add(), [(4,)] * 3, lambda p, xs: xs[0] + xs[1] + xs[2]),
    ("subtract", lambda: Subtract(), [(2, 3)] * 2, lambda p, xs: xs[0] - xs[1]),
    ("multiply3", lambda: Multiply(), [(4,)] * 3, lambda p, xs: xs[0] * xs[1] * xs[2]),
    ("average", lambda: Average(), [(4,)] * 2, lambda p, xs: (xs[0] + xs[1]) / 2),
    ("maximum", lambda: Maximum(), [(5,)] * 3, lambda p, xs: jnp.maximum(jnp.maximum(xs[0], xs[1]), xs[2])),
    ("minimum", lambda: Minimum(), [(5,)] * 2, lambda p, xs: jnp.minimum(xs[0], xs[1])),
    ("concatenate-axis1", lambda: Concatenate(axis=1), [(2, 3), (4, 3)], lambda p, xs: jnp.concatenate(xs, 1)),
    ("dot-vectors", lambda: Dot(axes=1), [(4,)] * 2, lambda p, xs: jnp.sum(xs[0] * xs[1], axis=1, keepdims=True)),
    ("dot-cosine", lambda: Dot(axes=1, normalize=True), [(4,)] * 2, lambda p, xs: jnp.sum(
        xs[0] / jnp.linalg.norm(xs[0], axis=1, keepdims=True) * xs[1] / jnp.linalg.norm(xs[1], axis=1, keepdims=True),
        axis=1, keepdims=True)),
    ("dot-matrices", lambda: Dot(axes=(2, 1)), [(3, 4), (4, 2)], lambda p, xs: jnp.einsum("nak,nkb->nab", *xs)),
    ("dot-axes-1", lambda: Dot(axes=1), [(4, 3), (4, 2)], lambda p, xs: jnp.einsum("nka,nkb->nab", *xs)),
]
ALL = [(i, f, s, o, kw) for i, f, s, o, kw in SPECS] + [(i, f, s, o, {}) for i, f, s, o in MERGES]


@pytest.mark.parametrize("case", ALL, ids=[c[0] for c in ALL])
def test_finite_differences_and_every_backend(case):
    _, factory, shape, _, options = case
    pn.testing.check_layer(factory, shape, **options)


@pytest.mark.parametrize("case", ALL, ids=[c[0] for c in ALL])
def test_against_jax_autodiff(case):
    """Our forward and backward (NumPy, float64) against jax.vjp of an independent expression."""
    _, factory, shape, oracle, options = case
    layer = factory()
    multi = layer.multi_input
    shapes = shape if multi else [shape]
    layer.build([tuple(s) for s in shapes] if multi else shape)
    rng = np.random.default_rng(1)
    xs = [rng.integers(0, 7, (4, *s)).astype(np.float64) if "integer_input" in options else
          rng.standard_normal((4, *s)) for s in shapes]
    training = options.get("training", False)
    with B.use("numpy", floatx="float64") as host:
        params = tree_map(host.to_numpy, layer.init(random.key(2)))
        y, cache = layer.forward(params, xs if multi else xs[0], training=training)
        dy = rng.standard_normal(y.shape)
        dx, grads = layer.backward(params, cache, dy)
    with B.use("jax", floatx="float64"):
        def pullback(p, x, dy):   # compiled whole: one compilation instead of one per primitive
            y, vjp = jax.vjp(oracle, p, x)
            return y, vjp(dy)

        y_ref, (grads_ref, dx_ref) = jax.jit(pullback)(tree_map(jnp.asarray, params),
                                                       [jnp.asarray(x) for x in xs] if multi else jnp.asarray(xs[0]),
                                                       jnp.asarray(dy))
    np.testing.assert_allclose(y, np.asarray(y_ref), rtol=1e-10, atol=1e-12)
    for name in params:
        if name not in layer.non_trainable:
            np.testing.assert_allclose(grads[name], np.asarray(grads_ref[name]), rtol=1e-9, atol=1e-12, err_msg=name)
    if "integer_input" not in options:
        for ours, ref in zip(dx if multi else [dx], dx_ref if multi else [dx_ref]):
            np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", ALL, ids=[c[0] for c in ALL])
def test_config_round_trip(case):
    _, factory, shape, _, _ = case
    layer = factory()
    again = pn.layers.deserialize(pn.layers.REGISTRY.serialize(layer))
    assert type(again) is type(layer)
    assert {k: v for k, v in again.get_config().items() if k != "name"} == \
        {k: v for k, v in layer.get_config().items() if k != "name"}


def _torch():
    return pytest.importorskip("torch")


TORCH = {  # spec id -> torch expression of (params as tensors, x as a tensor)
    "conv2d-dilated-same": lambda F, p, x: F.conv2d(x, p["kernel"], p["bias"], padding="same", dilation=2),
    "conv2d-groups": lambda F, p, x: F.conv2d(x, p["kernel"], p["bias"], stride=(2, 1), groups=3),
    "conv2d-transpose-valid": lambda F, p, x: F.conv_transpose2d(x, p["kernel"], p["bias"], stride=2),
    "batchnorm-training": lambda F, p, x: F.batch_norm(x, None, None, p["gamma"], p["beta"], training=True, eps=1e-3),
    "layernorm": lambda F, p, x: F.layer_norm(x, (6,), p["gamma"], p["beta"], eps=1e-3),
    "embedding": lambda F, p, x: F.embedding(x.long(), p["embeddings"]),
    "upsampling2d": lambda F, p, x: F.interpolate(x, scale_factor=(2, 3), mode="nearest"),
    "maxpool1d": lambda F, p, x: F.max_pool1d(x, 3),
    "prelu-shared": lambda F, p, x: F.prelu(x, p["alpha"].reshape(-1)),
    "activation-gelu": lambda F, p, x: F.gelu(x),
    "activation-gelu-tanh": lambda F, p, x: F.gelu(x, approximate="tanh"),
    "activation-selu": lambda F, p, x: F.selu(x),
    "activation-silu": lambda F, p, x: F.silu(x),
    "activation-log_softmax": lambda F, p, x: F.log_softmax(x, dim=-1),
}


@pytest.mark.parametrize("case", [c for c in SPECS if c[0] in TORCH], ids=[c[0] for c in SPECS if c[0] in TORCH])
def test_against_pytorch(case):
    torch = _torch()
    name, factory, shape, _, options = case
    layer = factory()
    layer.build(shape)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 7, (4, *shape)).astype(np.float64) if "integer_input" in options else \
        rng.standard_normal((4, *shape))
    with B.use("numpy", floatx="float64") as host:
        params = tree_map(host.to_numpy, layer.init(random.key(4)))
        y, cache = layer.forward(params, x, training=options.get("training", False))
        dy = rng.standard_normal(y.shape)
        dx, grads = layer.backward(params, cache, dy)
    tp = {k: torch.tensor(v, requires_grad=k not in layer.non_trainable) for k, v in params.items()}
    tx = torch.tensor(x, requires_grad="integer_input" not in options)
    ty = TORCH[name](torch.nn.functional, tp, tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for k, v in tp.items():
        if v.requires_grad:
            np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
    if tx.requires_grad:
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
