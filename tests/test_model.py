"""Models: the Keras-style workflow, cross-backend training, the functional graph, saving."""
import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet.callbacks import EarlyStopping
from portanet.layers import Add, Concatenate, Conv2D, Dense, Dropout, Flatten, MaxPool2D

from portanet.training import steps
from portanet.training.steps import loss_and_grads

from helpers import directional_check, to_device, to_host

rng = np.random.default_rng(0)
X = rng.standard_normal((300, 8)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 0.8)


def mlp(seed=0, dropout=0.0):
    pn.set_seed(seed)
    layers = [pn.Input((8,)), Dense(16, activation="relu")]
    if dropout:
        layers.append(Dropout(dropout))
    return pn.Sequential(layers + [Dense(3, activation="softmax")])


def test_keras_style_script(backend, tmp_path, capsys):
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, Y, epochs=30, batch_size=32, validation_split=0.2, verbose=0,
                        callbacks=[EarlyStopping(patience=2, restore_best_weights=True)])
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(X, Y, verbose=0)
    assert 0 < loss < 1.2 and 0.5 < accuracy <= 1
    predictions = model.predict(X)
    assert predictions.shape == (300, 3) and np.allclose(predictions.sum(1), 1, atol=1e-5)
    model.summary()
    assert "Total params: 195" in capsys.readouterr().out
    path = tmp_path / "model.pnet"
    model.save(path)
    again = pn.load_model(path)
    np.testing.assert_array_equal(again.predict(X), predictions)
    assert again.evaluate(X, Y, verbose=0) == pytest.approx([loss, accuracy], rel=1e-6)


def loss_curve(name, model_fn, x, y, loss, steps_epochs=3, jit_compile="auto", batch_size=20):
    with B.use(name):
        model = model_fn()
        model.compile(optimizer=pn.optimizers.Adam(1e-2), loss=loss, metrics=["accuracy"], jit_compile=jit_compile)
        history = model.fit(x, y, epochs=steps_epochs, batch_size=batch_size, verbose=0, seed=7)
        return np.array(history.history["loss"]), model.predict(x[:16])


def reference_curve(model_fn, x, y, epochs):
    """The loss curve and predictions of `loss_curve` on NumPy in float64, from the float32
    initial weights (the same dropout masks: they do not depend on floatx)."""
    with B.use("numpy", floatx="float32"):
        weights = model_fn().get_weights()
    with B.use("numpy", floatx="float64"):
        def same_start():
            model = model_fn()
            model.set_weights([w.astype(np.float64) for w in weights])
            return model
        return loss_curve("numpy", same_start, x, y, "sparse_categorical_crossentropy", epochs)


@pytest.fixture(scope="module")
def mlp_reference():
    return reference_curve(lambda: mlp(dropout=0.2), X, Y, 20)


def test_same_loss_curve_on_every_backend_mlp(backend, mlp_reference):
    """300 examples / batch 20 = 15 steps an epoch, 20 epochs: 300 steps, with dropout; every
    backend in float32 against the one float64 reference."""
    reference, pred_ref = mlp_reference
    curve, pred = loss_curve(backend.name, lambda: mlp(dropout=0.2), X, Y, "sparse_categorical_crossentropy", 20)
    assert curve[-1] < 0.6 * curve[0]
    np.testing.assert_allclose(curve, reference, rtol=2e-4)
    np.testing.assert_allclose(pred, pred_ref, rtol=1e-3, atol=1e-4)


IMAGES = rng.standard_normal((120, 1, 10, 10)).astype(np.float32)
IMAGE_LABELS = (IMAGES[:, 0, :5].mean(axis=(1, 2)) > IMAGES[:, 0, 5:].mean(axis=(1, 2))).astype(np.int64)


def small_cnn(seed=0):
    pn.set_seed(seed)
    return pn.Sequential([pn.Input((1, 10, 10)), Conv2D(4, 3, activation="relu"), MaxPool2D(2),
                          Conv2D(6, 3, padding="same", activation="relu"), Flatten(),
                          Dense(2, activation="softmax")])


@pytest.fixture(scope="module")
def cnn_reference():
    return reference_curve(small_cnn, IMAGES, IMAGE_LABELS, 10)


def test_same_loss_curve_on_every_backend_cnn(backend, cnn_reference):
    """120 examples / batch 20 = 6 steps an epoch, 10 epochs: 60 steps through conv and pool
    layers; every backend in float32 against the one float64 reference."""
    reference, pred_ref = cnn_reference
    curve, pred = loss_curve(backend.name, small_cnn, IMAGES, IMAGE_LABELS, "sparse_categorical_crossentropy", 10)
    assert curve[-1] < 0.8 * curve[0]
    np.testing.assert_allclose(curve, reference, rtol=2e-4)
    np.testing.assert_allclose(pred, pred_ref, rtol=1e-3, atol=1e-4)


def test_jit_equals_eager_on_jax():
    if not B.installed("jax"):
        pytest.skip("jax not installed")
    with B.use("jax", floatx="float64"):   # 2 epochs of 5 steps: eager JAX runs op by op
        jitted, _ = loss_curve("jax", lambda: mlp(dropout=0.2), X, Y, "sparse_categorical_crossentropy", 2,
                               batch_size=60)
        eager, _ = loss_curve("jax", lambda: mlp(dropout=0.2), X, Y, "sparse_categorical_crossentropy", 2,
                              jit_compile=False, batch_size=60)
    np.testing.assert_allclose(jitted, eager, rtol=1e-10)


def test_summary_counts_match_keras(capsys):
    model = pn.Sequential([pn.Input((4,)), Dense(2, activation="tanh"), Dense(3, activation="softmax")])
    assert model.count_params() == 19
    course = pn.Sequential([pn.Input((784,)), Dense(40, activation="relu"), Dense(40, activation="relu"),
                            Dense(40, activation="relu"), Dense(10, activation="softmax")])
    assert course.count_params() == 35090
    course.summary()
    out = capsys.readouterr().out
    assert "Total params: 35,090" in out and "(None, 40)" in out and "31,400" in out
    lenet = pn.Sequential([pn.Input((1, 32, 32)), Conv2D(6, 5, activation="relu"), MaxPool2D(2),
                           Conv2D(16, 5, activation="relu"), MaxPool2D(2), Flatten(),
                           Dense(120, activation="relu"), Dense(84, activation="relu"), Dense(10, activation="softmax")])
    assert lenet.count_params() == 156 + 2416 + 48120 + 10164 + 850   # 61,706 as in Keras
    lenet.summary()
    out = capsys.readouterr().out
    assert "(None, 6, 28, 28)" in out and "(None, 400)" in out and "Total params: 61,706" in out


def test_sequential_builds_from_first_data_and_input_dim():
    model = pn.Sequential([Dense(4, activation="relu"), Dense(1, activation="sigmoid")])
    assert not model.built
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy", "auc"])
    model.fit(X, (Y > 0).astype(np.float32), epochs=1, verbose=0)
    assert model.built and model.count_params() == 8 * 4 + 4 + 5
    keras2 = pn.Sequential([Dense(4, input_dim=8), Dense(2)])
    assert keras2.built and keras2.layers[0].output_shape == (4,)


def branch_and_merge():
    pn.set_seed(3)
    inputs = pn.Input((8,))
    shared = Dense(6, activation="tanh", name="shared")
    h = shared(inputs)
    a = Dense(6, activation="relu", name="a")(h)
    b = Dense(6, activation="sigmoid", name="b")(h)
    merged = Add()([a, b, h])
    joined = Concatenate()([merged, a])
    outputs = Dense(3, activation="softmax", name="out")(joined)
    return pn.Model(inputs=inputs, outputs=outputs)


def test_functional_branch_and_merge_gradients(float64):
    model = branch_and_merge()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = to_device(X[:10].astype(np.float64)), B.get().asarray(Y[:10].astype(np.int32))
    value, _, grads = loss_and_grads(model.graph, model.heads, model.params, x, y, None)
    params = to_host(model.params)

    def loss(p):
        return float(to_host(loss_and_grads(model.graph, model.heads, to_device(p), x, y, None)[0]))

    directional_check(loss, params, to_host(grads), rtol=1e-6)


def test_functional_model_trains_and_reuses_layers(backend):
    model = branch_and_merge()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, Y, epochs=5, batch_size=30, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert [layer.name for layer in model.layers] == ["shared", "a", "b", "add", "concatenate", "out"][:2] + \
        [layer.name for layer in model.layers][2:]
    assert model.get_layer("shared").output_shape == (6,)


def test_reused_layer_sums_gradients(float64):
    inputs = pn.Input((4,))
    layer = Dense(4, activation="tanh", name="twice")
    outputs = Dense(2, name="head")(layer(layer(inputs)))
    model = pn.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    x = to_device(rng.standard_normal((5, 4)))
    y = to_device(rng.standard_normal((5, 2)))
    _, _, grads = loss_and_grads(model.graph, model.heads, model.params, x, y, None)
    directional_check(lambda p: float(to_host(loss_and_grads(model.graph, model.heads, to_device(p), x, y, None)[0])),
                      to_host(model.params), to_host(grads))


def test_regularization_is_in_loss_and_gradient(float64):
    pn.set_seed(0)
    model = pn.Sequential([pn.Input((8,)), Dense(5, activation="tanh", kernel_regularizer=pn.regularizers.l2(0.1)),
                           Dense(3, activation="softmax", kernel_regularizer=pn.regularizers.l1(0.01))])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y = to_device(X[:7].astype(np.float64)), to_device(np.eye(3)[Y[:7]])
    _, _, grads = loss_and_grads(model.graph, model.heads, model.params, x, y, None)
    directional_check(lambda p: float(to_host(loss_and_grads(model.graph, model.heads, to_device(p), x, y, None)[0])),
                      to_host(model.params), to_host(grads))


def test_weights_roundtrip_and_errors():
    model = mlp()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(8, 16), (16,), (16, 3), (3,)]
    model.set_weights([w * 0 for w in weights])
    assert all(np.all(w == 0) for w in model.get_weights())
    with pytest.raises(pn.InvalidArgumentError, match="Expected shape \\(16, 3\\)"):
        model.set_weights([weights[0], weights[1], np.zeros((3, 16)), weights[3]])
    assert all(np.all(w == 0) for w in model.get_weights())  # nothing changed
    with pytest.raises(pn.InvalidArgumentError, match="a list of 4 arrays"):
        model.set_weights(weights[:2])


def test_same_initial_weights_on_every_backend(backend):
    with B.use("numpy"):
        expected = mlp(seed=11).get_weights()
    for got, want in zip(mlp(seed=11).get_weights(), expected):
        np.testing.assert_array_equal(got, want)


def test_jax_compiles_once_across_epochs_and_fits(monkeypatch):
    if not B.installed("jax"):
        pytest.skip("jax not installed")
    traces = {"chunk": 0, "train": 0, "eval": 0}
    for name in traces:
        make = getattr(steps, f"make_{name}_step")

        def counting(*parts, _make=make, _name=name):
            step = _make(*parts)

            def traced(*args):
                traces[_name] += 1  # runs only while JAX traces
                return step(*args)
            return traced
        monkeypatch.setattr(steps, f"make_{name}_step", counting)
    with B.use("jax"):
        model = mlp(dropout=0.1)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(X, Y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)  # 240 = 7*32 + 16
        model.fit(X, Y, epochs=2, batch_size=32, validation_split=0.2, verbose=0)
    # one chunk program for the full batches (it traces the train step inside it), one step program
    # for the last batch of 16, two validation shapes (32 and 16); the second fit traces nothing new
    assert traces == {"chunk": 1, "train": 2, "eval": 2}


def test_device_data_budget_gives_the_same_training(backend, monkeypatch):
    """Data on the device at once (batches gathered there) or sent batch by batch: same curve."""
    curves = []
    for budget in (2 ** 40, 0):
        monkeypatch.setattr(pn.Model, "device_data_budget", budget)
        sent = []
        original = B.get().asarray
        monkeypatch.setattr(type(backend), "asarray", lambda self, a, dtype=None: sent.append(getattr(a, "shape", ())) or original(a, dtype))
        curves.append(loss_curve(backend.name, lambda: mlp(dropout=0.2), X, Y, "sparse_categorical_crossentropy", 2)[0])
        monkeypatch.undo()
        assert (X.shape in sent) == (budget > 0)   # the whole training set went over at once, or never
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-6)
