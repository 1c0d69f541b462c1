"""Losses: values, gradients (finite differences, fused vs unfused), backends, jax/torch oracles."""
import numpy as np
import pytest

from portanet import activations, losses
from portanet import backend as B
from portanet.errors import InvalidArgumentError

from helpers import assert_matches_reference, directional_check, to_device, to_host

rng = np.random.default_rng(0)


def make_case(name, batch=6, classes=4):
    z = rng.standard_normal((batch, classes)) * 2
    if name == "sparse_categorical_crossentropy":
        y = rng.integers(0, classes, batch)
    elif name == "categorical_crossentropy":
        y = np.eye(classes)[rng.integers(0, classes, batch)]
    elif name == "binary_crossentropy":
        y = rng.integers(0, 2, (batch, classes)).astype(float)
    else:
        y = rng.standard_normal((batch, classes))
    return y, z


def prediction(name, from_logits, z):
    if from_logits or name in ("mean_squared_error", "mean_absolute_error"):
        return z
    act = activations.sigmoid if name == "binary_crossentropy" else activations.softmax
    return act(z)


NAMES = ["mean_squared_error", "mean_absolute_error", "binary_crossentropy", "categorical_crossentropy",
         "sparse_categorical_crossentropy"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("from_logits", [False, True])
def test_loss_gradients(float64, name, from_logits):
    loss = losses.get(name)
    loss.from_logits = from_logits
    y, z = make_case(name)
    pred = to_host(prediction(name, from_logits, to_device(z)))
    value, cache = loss.forward(to_device(y), to_device(pred))
    grad = to_host(loss.backward(cache))
    # small eps: log p curves steeply for small p
    directional_check(lambda p: float(to_host(loss(to_device(y), to_device(p)))), pred, grad, eps=1e-7, rtol=1e-6)


@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_fused_gradient_is_p_minus_y(float64, name):
    loss = losses.get(name)
    y, z = make_case(name)
    value, dz = loss.logits_forward(to_device(y), to_device(z))
    p = to_host(prediction(name, False, to_device(z)))
    onehot = np.eye(z.shape[1])[y] if name.startswith("sparse") else y
    scale = z.size if name == "binary_crossentropy" else z.shape[0]
    np.testing.assert_allclose(to_host(dz), (p - onehot) / scale, rtol=1e-12, atol=1e-15)
    # the fused value equals the unfused one, and the unfused gradient chained through the activation
    unfused, cache = loss.forward(to_device(y), to_device(p))
    np.testing.assert_allclose(float(to_host(value)), float(to_host(unfused)), rtol=1e-7)
    act = activations.get(loss.fused_activation)
    chained = to_host(act.backward(loss.backward(cache), to_device(z), to_device(p)))
    np.testing.assert_allclose(to_host(dz), chained, rtol=1e-6, atol=1e-12)


def test_fused_is_stable_where_probabilities_round_to_zero(backend):
    loss = losses.get("categorical_crossentropy")
    z = backend.asarray(np.array([[1000.0, 0.0, -1000.0]], np.float32))
    y = backend.asarray(np.array([[0.0, 0.0, 1.0]], np.float32))
    value, dz = loss.logits_forward(y, z)
    assert float(backend.to_numpy(value)) == pytest.approx(2000.0)
    np.testing.assert_allclose(backend.to_numpy(dz), [[1.0, 0.0, -1.0]], atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_losses_match_reference_on_every_backend(backend, name):
    y, z = make_case(name)

    def run(y, z):
        loss = losses.get(name)
        value, cache = loss.forward(y, prediction(name, False, z))
        return [value, loss.backward(cache)]

    assert_matches_reference(backend, run, y, z, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_losses_against_jax_and_torch(name):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    y, z = make_case(name)
    with B.use("numpy", floatx="float64"):
        loss = losses.get(name)
        loss.from_logits = name not in ("mean_squared_error", "mean_absolute_error")
        value, cache = loss.forward(y, z)
        grad = loss.backward(cache)
    def reference(z):
        if name == "mean_squared_error":
            return jnp.mean((z - y) ** 2)
        if name == "mean_absolute_error":
            return jnp.mean(jnp.abs(z - y))
        if name == "binary_crossentropy":
            return jnp.mean(-(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z)))
        onehot = jax.nn.one_hot(y, z.shape[1]) if name.startswith("sparse") else y
        return -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(z), axis=1))
    with B.use("jax", floatx="float64"):
        ref_value, ref_grad = jax.value_and_grad(reference)(jnp.asarray(z))
        np.testing.assert_allclose(value, float(ref_value), rtol=1e-12)
        np.testing.assert_allclose(grad, np.asarray(ref_grad), rtol=1e-10, atol=1e-14)
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tz = torch.tensor(z, requires_grad=True)
    ty = torch.tensor(y)
    t_loss = {"mean_squared_error": lambda: F.mse_loss(tz, ty), "mean_absolute_error": lambda: F.l1_loss(tz, ty),
              "binary_crossentropy": lambda: F.binary_cross_entropy_with_logits(tz, ty),
              "categorical_crossentropy": lambda: F.cross_entropy(tz, ty),
              "sparse_categorical_crossentropy": lambda: F.cross_entropy(tz, ty)}[name]()
    t_loss.backward()
    np.testing.assert_allclose(value, t_loss.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_loss_lookup_and_errors():
    assert losses.get("mse").name == "mean_squared_error"
    assert losses.get({"name": "binary_crossentropy", "from_logits": True}).from_logits
    with pytest.raises(InvalidArgumentError, match="Received: loss='msee'"):
        losses.get("msee")
    with pytest.raises(TypeError, match="from_logits"):
        losses.BinaryCrossentropy(from_logits="yes")


# ---- the losses added for Keras programs, checked against Keras 3 itself where it is installed ----

def keras_case(name, batch=6, classes=4, seed=1):
    r = np.random.default_rng(seed)
    if name == "poisson":
        return r.poisson(2.0, (batch, classes)).astype(float), np.exp(r.standard_normal((batch, classes)))
    if name == "kl_divergence":
        soft = lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)  # noqa: E731
        return soft(r.standard_normal((batch, classes))), soft(r.standard_normal((batch, classes)))
    if name in ("hinge", "squared_hinge"):  # {0, 1} labels: Keras maps them to {-1, 1}
        return r.integers(0, 2, (batch, classes)).astype(float), r.standard_normal((batch, classes))
    if name in ("binary_crossentropy",):
        return r.integers(0, 2, (batch, classes)).astype(float), r.uniform(0.05, 0.95, (batch, classes))
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        p = np.exp(r.standard_normal((batch, classes)))
        labels = r.integers(0, classes, batch)
        return (labels if name.startswith("sparse") else np.eye(classes)[labels]), p / p.sum(-1, keepdims=True)
    return r.standard_normal((batch, classes)), 2 * r.standard_normal((batch, classes))


NEW = ["huber", "log_cosh", "poisson", "kl_divergence", "hinge", "squared_hinge", "cosine_similarity"]
KERAS_CLASSES = {"huber": "Huber", "log_cosh": "LogCosh", "poisson": "Poisson", "kl_divergence": "KLDivergence",
                 "hinge": "Hinge", "squared_hinge": "SquaredHinge", "cosine_similarity": "CosineSimilarity",
                 "mean_squared_error": "MeanSquaredError", "mean_absolute_error": "MeanAbsoluteError",
                 "binary_crossentropy": "BinaryCrossentropy", "categorical_crossentropy": "CategoricalCrossentropy",
                 "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy"}


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("weighted", [False, True])
def test_new_loss_gradients(float64, name, weighted):
    loss = losses.get(name)
    y, pred = keras_case(name)
    w = np.linspace(0.0, 2.0, y.shape[0]) if weighted else None
    value, cache = loss.forward(to_device(y), to_device(pred), None if w is None else to_device(w))
    grad = to_host(loss.backward(cache))
    directional_check(lambda p: float(to_host(loss(to_device(y), to_device(p), None if w is None else to_device(w)))),
                      pred, grad, eps=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", NEW)
def test_new_losses_match_reference_on_every_backend(backend, name):
    y, pred = keras_case(name)
    w = np.linspace(0.5, 1.5, y.shape[0])

    def run(y, pred, w):
        value, cache = losses.get(name).forward(y, pred, w)
        return [value, losses.get(name).backward(cache)]

    assert_matches_reference(backend, run, y, pred, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", NEW + NAMES)
@pytest.mark.parametrize("weighted", [False, True])
def test_losses_against_keras(keras, name, weighted):
    """Value and gradient, with and without sample weights, equal Keras 3's (autodiff on JAX)."""
    import jax
    jnp = jax.numpy
    y, pred = keras_case(name)
    w = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0]) if weighted else None
    with B.use("numpy", floatx="float64"):
        value, cache = losses.get(name).forward(y, pred, w)
        grad = losses.get(name).backward(cache)
    reference = getattr(keras.losses, KERAS_CLASSES[name])()
    with B.use("jax", floatx="float64"):
        ref_value, ref_grad = jax.value_and_grad(
            lambda p: reference(jnp.asarray(y), p, sample_weight=None if w is None else jnp.asarray(w)))(jnp.asarray(pred))
    np.testing.assert_allclose(value, float(ref_value), rtol=1e-5)
    np.testing.assert_allclose(grad, np.asarray(ref_grad), rtol=1e-4, atol=1e-7)


def test_a_plain_function_as_loss_is_refused_with_guidance():
    with pytest.raises(TypeError, match="per_example_grad"):
        losses.get(lambda y, p: ((y - p) ** 2).mean())
