"""Keras' training API: sample and class weights, weighted metrics, several inputs and outputs,
the batch methods, checked against Keras 3 itself (on JAX, float64) on the same data and weights;
and on every backend: the batch methods share compiled steps, freezing keeps the optimizer state."""
import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet.training.steps import loss_and_grads

rng = np.random.default_rng(3)
X = rng.standard_normal((48, 5))
X2 = rng.standard_normal((48, 3))
LABELS = rng.integers(0, 3, 48)
TARGETS = rng.standard_normal((48, 1))
W = rng.uniform(0.0, 2.0, 48)


def classifier(ns):
    inputs = ns.Input((5,))
    hidden = ns.layers.Dense(8, activation="tanh")(inputs)
    return ns.Model(inputs, ns.layers.Dense(3, activation="softmax")(hidden))


def two_in_two_out(ns):
    a, b = ns.Input((5,), name="a"), ns.Input((3,), name="b")
    hidden = ns.layers.Dense(8, activation="tanh")(ns.layers.Concatenate()([a, b]))
    return ns.Model([a, b], [ns.layers.Dense(3, activation="softmax", name="cls")(hidden),
                             ns.layers.Dense(1, name="reg")(hidden)])


def pair(keras, build, **compile_args):
    """The same architecture in Keras and in portanet (NumPy, float64), with Keras' initial weights."""
    reference = build(keras)
    reference.compile(optimizer=keras.optimizers.SGD(0.1), **compile_args)
    with B.use("numpy", floatx="float64"):
        model = build(pn)
        model.compile(optimizer=pn.optimizers.SGD(0.1), **compile_args)
        model.set_weights(reference.get_weights())
    return reference, model


def assert_logs_equal(got, want, rtol=1e-6):
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=1e-9, err_msg=key)


def assert_weights_equal(model, reference, rtol=1e-6, atol=1e-8):
    """(Keras at float64 still rounds some steps to float32, depending on what ran before: the
    absolute tolerance covers that; ours are float64 throughout.)"""
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, np.asarray(want), rtol=rtol, atol=atol)


@pytest.mark.parametrize("weights", ["sample_weight", "class_weight"])
def test_weighted_training_matches_keras(keras64, weights):
    keras = keras64
    reference, model = pair(keras, classifier, loss="sparse_categorical_crossentropy", metrics=["acc"],
                            weighted_metrics=["acc"])
    given = {"sample_weight": W} if weights == "sample_weight" else {"class_weight": {0: 0.5, 1: 2.0, 2: 1.0}}
    with B.use("numpy", floatx="float64"):
        want = reference.fit(X, LABELS, batch_size=16, epochs=2, shuffle=False, verbose=0, **given).history
        got = model.fit(X, LABELS, batch_size=16, epochs=2, shuffle=False, verbose=0, **given).history
        assert_logs_equal(got, want)
        assert "weighted_acc" in got and got["weighted_acc"] != got["acc"]
        assert_weights_equal(model, reference)
        assert_logs_equal(model.evaluate(X, LABELS, sample_weight=W, verbose=0, return_dict=True),
                          reference.evaluate(X, LABELS, sample_weight=W, verbose=0, return_dict=True))


def test_two_inputs_two_outputs_match_keras(keras64):
    keras = keras64
    settings = dict(loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, loss_weights={"cls": 1.0, "reg": 0.5},
                    metrics={"cls": ["acc"], "reg": ["mae", "mse"]})
    reference, model = pair(keras, two_in_two_out, **settings)
    x, y = {"a": X, "b": X2}, {"cls": LABELS, "reg": TARGETS}
    with B.use("numpy", floatx="float64"):
        # (Keras 3.15 fails on dicts of labels and weights together: lists there)
        want = reference.fit(x, [LABELS, TARGETS], batch_size=16, epochs=2, shuffle=False, verbose=0,
                             sample_weight=[W, np.ones(48)]).history
        got = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                        sample_weight={"cls": W}).history  # "reg" left out: no weights
        # Keras' forward pass of this model deviates from NumPy float64 by ~1e-7 (ours: by 0),
        # so the tolerances here are those of float32
        assert_logs_equal(got, want, rtol=1e-5)
        assert_weights_equal(model, reference, rtol=1e-5, atol=1e-6)
        # lists in input / output order give the same; evaluate lists the logs in Keras' order
        np.testing.assert_allclose(model.evaluate([X, X2], [LABELS, TARGETS], verbose=0),
                                   reference.evaluate([X, X2], [LABELS, TARGETS], verbose=0), rtol=1e-5)
        for got_out, want_out in zip(model.predict([X, X2]), reference.predict([X, X2], verbose=0)):
            np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-6)
    assert model.metrics_names == ["loss", "cls_loss", "reg_loss", "cls_acc", "reg_mae", "reg_mse"]


def test_batch_methods_match_keras(keras64):
    keras = keras64
    reference, model = pair(keras, classifier, loss="sparse_categorical_crossentropy", metrics=["acc"])
    with B.use("numpy", floatx="float64"):
        for i in range(3):
            rows = slice(16 * i, 16 * (i + 1))
            np.testing.assert_allclose(model.train_on_batch(X[rows], LABELS[rows], sample_weight=W[rows]),
                                       reference.train_on_batch(X[rows], LABELS[rows], sample_weight=W[rows]),
                                       rtol=1e-5)
        assert_logs_equal(model.test_on_batch(X, LABELS, return_dict=True),
                          reference.test_on_batch(X, LABELS, return_dict=True))
        np.testing.assert_allclose(model.predict_on_batch(X), reference.predict_on_batch(X), rtol=1e-5)
        assert_weights_equal(model, reference, rtol=1e-5, atol=1e-7)  # Keras' batch methods: ~1e-6 off float64
    only_loss = pn.Sequential([pn.Input((5,)), pn.layers.Dense(1)])
    only_loss.compile("sgd", "mse")
    assert isinstance(only_loss.train_on_batch(X, TARGETS), float)
    assert set(only_loss.test_on_batch(X, TARGETS, return_dict=True)) == {"loss"}


@pytest.mark.parametrize("name, keras_name", [("mae", "mae"), ("mse", "mse"), ("mape", "mape"),
                                              ("rmse", "RootMeanSquaredError"), ("r2_score", "R2Score")])
def test_regression_metrics_match_keras(keras64, name, keras_name):
    keras = keras64
    y, p = rng.standard_normal((20, 2)), rng.standard_normal((20, 2))
    metric = pn.metrics.get(name)
    with B.use("numpy", floatx="float64"):
        got = float(metric(y, p, W[:20]))
    reference = keras.metrics.get(keras_name) if keras_name.islower() else getattr(keras.metrics, keras_name)()
    if callable(reference) and not isinstance(reference, keras.metrics.Metric):
        reference = keras.metrics.MeanMetricWrapper(reference)
    reference.update_state(y, p, sample_weight=W[:20])
    np.testing.assert_allclose(got, float(reference.result()), rtol=1e-6)
    assert metric.name == name


def test_an_output_without_a_loss_keeps_its_weights(keras64):
    reference, model = pair(keras64, two_in_two_out, loss={"cls": "sparse_categorical_crossentropy", "reg": None})
    before = model.get_weights()
    with B.use("numpy", floatx="float64"):
        want = reference.fit([X, X2], [LABELS, TARGETS], batch_size=16, shuffle=False, verbose=0).history
        got = model.fit([X, X2], [LABELS, TARGETS], batch_size=16, shuffle=False, verbose=0).history
    assert_logs_equal(got, want, rtol=1e-5)
    np.testing.assert_array_equal(model.get_weights()[-1], before[-1])


def test_float_labels_holding_whole_numbers_are_cast():
    model = classifier(pn)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"])
    pn.set_seed(0)
    as_float = model.evaluate(X, LABELS.astype(np.float32), verbose=0)
    assert as_float == model.evaluate(X, LABELS, verbose=0)


def count_traces(model):
    """Count the Python runs of the model's forward pass: once per trace where steps compile."""
    calls = []
    forward = model.graph.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    model.graph.forward = counted
    return calls


def test_batch_methods_reuse_their_compiled_steps(backend):
    """The batch methods run fit's / evaluate's / predict's compiled steps: repeating them
    compiles nothing new (JAX traces once, CuPy captures once; NumPy and strict run eagerly)."""
    pn.set_seed(0)
    model = classifier(pn)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    model.fit(X, LABELS, batch_size=16, epochs=1, verbose=0)
    calls = count_traces(model)

    def round_of_calls():
        losses = [model.train_on_batch(X[:16], LABELS[:16])[0] for _ in range(5)]
        model.evaluate(X, LABELS, batch_size=16, verbose=0)
        model.test_on_batch(X[:16], LABELS[:16])
        model.predict(X, batch_size=16)
        model.predict_on_batch(X[:16])
        return losses

    losses = round_of_calls()
    assert losses[-1] < losses[0]
    first = len(calls)
    round_of_calls()
    if backend.name in ("jax", "cupy"):
        assert len(calls) == first           # nothing traced or captured again
        if backend.name == "jax":
            assert first == 3                # train, eval (shared by test_on_batch), predict
    else:
        assert len(calls) == 2 * first >= 2 * (5 + 3 + 1 + 3 + 1)


def test_freezing_keeps_the_optimizer_state_of_the_trainable_weights(backend):
    """Train, freeze the first layer, train on with train_on_batch: its weights stay; the last
    layer's step uses the momentum it had (w <- w + 0.9 v - lr g), not a fresh state."""
    pn.set_seed(0)
    model = pn.Sequential([pn.Input((5,)), pn.layers.Dense(8, activation="tanh"), pn.layers.Dense(3, activation="softmax")])
    model.compile(pn.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    x, y = X.astype(np.float32), LABELS
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    first, last = model.layers
    first.trainable = False
    before = model.get_weights()
    velocity = {k: backend.to_numpy(v) for k, v in model.opt_state["momentum"][last.name].items()}
    grads = loss_and_grads(model.graph, model.heads, model.params, backend.asarray(x[:16], dtype=backend.xp.float32),
                           backend.asarray(y[:16].astype(np.int32)))[2]
    model.train_on_batch(x[:16], y[:16])
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    for i, name in ((2, "kernel"), (3, "bias")):
        g = backend.to_numpy(grads[last.name][name])
        np.testing.assert_allclose(after[i], before[i] + 0.9 * velocity[name] - 0.1 * g, rtol=1e-4, atol=1e-6)
    first.trainable = True
    model.train_on_batch(x[:16], y[:16])
    assert not np.array_equal(model.get_weights()[0], after[0])


def train_two_outputs(backend_name, floatx):
    with B.use(backend_name, floatx=floatx):
        pn.set_seed(7)
        model = two_in_two_out(pn)
        model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "huber"], loss_weights=[1.0, 0.3],
                      metrics=[["acc"], ["mae"]], weighted_metrics=[["acc"], None])
        history = model.fit([X, X2], [LABELS, TARGETS], sample_weight=[W, None], batch_size=16, epochs=2,
                            shuffle=False, verbose=0, validation_data=([X, X2], [LABELS, TARGETS]))
        logs = model.train_on_batch([X[:16], X2[:16]], [LABELS[:16], TARGETS[:16]], class_weight=None,
                                    return_dict=True)
        return history.history, logs, model.get_weights()


def test_two_inputs_two_outputs_on_every_backend(backend):
    want = train_two_outputs("numpy", "float64")
    got = train_two_outputs(backend.name, "float32")
    for g, w in zip(got[:2], want[:2]):
        assert set(g) == set(w)
        for key in w:
            np.testing.assert_allclose(g[key], w[key], rtol=1e-4, atol=1e-5, err_msg=key)
    for g, w in zip(got[2], want[2]):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("sparse", [False, True])
def test_top_k_accuracy_matches_keras(keras64, sparse):
    y = rng.integers(0, 6, 30)
    p = rng.random((30, 6))
    metric = pn.metrics.SparseTopKCategoricalAccuracy(k=2) if sparse else pn.metrics.TopKCategoricalAccuracy(k=2)
    reference = (keras64.metrics.SparseTopKCategoricalAccuracy(k=2) if sparse
                 else keras64.metrics.TopKCategoricalAccuracy(k=2))
    labels = y if sparse else np.eye(6)[y]
    reference.update_state(labels, p, sample_weight=W[:30])
    with B.use("numpy", floatx="float64"):
        assert float(metric(labels, p, W[:30])) == pytest.approx(float(reference.result()), rel=1e-9)


def test_class_weight_in_train_on_batch_matches_keras(keras64):
    reference, model = pair(keras64, classifier, loss="sparse_categorical_crossentropy")
    weights = {0: 3.0, 2: 0.5}
    with B.use("numpy", floatx="float64"):
        for _ in range(2):
            np.testing.assert_allclose(model.train_on_batch(X, LABELS, class_weight=weights),
                                       reference.train_on_batch(X, LABELS, class_weight=weights), rtol=1e-5)
        assert_weights_equal(model, reference, rtol=1e-5, atol=1e-7)
