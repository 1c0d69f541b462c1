"""Keras programs' patterns: models used as layers, a layer shared by two models, batch
normalization's moving statistics, Normalization.adapt, channels-last images, custom layers."""
import pathlib

import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet.errors import InvalidArgumentError, InvalidTypeError
from portanet.layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D,
                             MaxPooling2D, Normalization, Softmax)
from portanet.training.steps import loss_and_grads

from helpers import directional_check, to_device, to_host

rng = np.random.default_rng(0)
X = rng.standard_normal((96, 6)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)


def encoder(seed=0):
    pn.set_seed(seed)
    return pn.Sequential([pn.Input((6,)), Dense(8, activation="tanh"), Dense(5, activation="relu")], name="encoder")


def test_a_trained_model_inside_a_sequential_predicts_probabilities(backend, capsys):
    """The clothing-classification tutorial: logits trained from_logits, then Sequential([model, Softmax()])."""
    model = pn.Sequential([pn.Input((6,)), Dense(16, activation="relu"), Dense(3)])
    model.compile(optimizer="adam", loss=pn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(X, Y, epochs=3, batch_size=16, verbose=0)
    probability_model = pn.Sequential([model, Softmax()])
    logits, probabilities = model.predict(X), probability_model.predict(X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == logits.argmax(axis=1)).all()
    assert probability_model.count_params() == model.count_params() == 6 * 16 + 16 + 16 * 3 + 3
    probability_model.summary()
    assert "(Sequential)" in capsys.readouterr().out


def test_a_model_called_on_a_tensor_trains_end_to_end(backend):
    inner = encoder()
    inputs = pn.Input((6,))
    outputs = Dense(3, activation="softmax")(inner(inputs))
    model = pn.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = inner.get_weights()
    history = model.fit(X, Y, epochs=4, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert all(not np.array_equal(a, b) for a, b in zip(before, inner.get_weights()))  # it trained too
    np.testing.assert_allclose(model.predict(X[:5]), pn.Sequential([inner, model.layers[-1]]).predict(X[:5]),
                               rtol=1e-5)


def test_gradients_flow_through_a_nested_model(float64):
    inputs = pn.Input((6,))
    hidden = Dense(4, activation="tanh")(inputs)
    inner = pn.Sequential([pn.Input((4,)), Dense(4, activation="sigmoid"), Dense(3)])
    model = pn.Model(inputs, Dense(2)(inner(hidden)))
    model.compile(optimizer="sgd", loss="mse")
    x, y = to_device(X[:7].astype(np.float64)), to_device(rng.standard_normal((7, 2)))
    _, _, grads = loss_and_grads(model.graph, model.heads, model.params, x, y, None)
    directional_check(lambda p: float(to_host(loss_and_grads(model.graph, model.heads, to_device(p), x, y, None)[0])),
                      to_host(model.params), to_host(grads))


def test_a_model_with_a_nested_model_saves_and_loads(backend, tmp_path):
    model = pn.Sequential([encoder(), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "nested.pnet")
    again = pn.load_model(tmp_path / "nested.pnet")
    np.testing.assert_allclose(again.predict(X), model.predict(X), rtol=1e-6)
    assert type(again.layers[0]).__name__ == "Sequential"
    again.fit(X, Y, epochs=1, batch_size=32, verbose=0)


def test_a_layer_shared_by_two_models_trained_in_turn(backend):
    shared = Dense(8, activation="relu")
    a_in, b_in = pn.Input((6,)), pn.Input((6,))
    first = pn.Model(a_in, Dense(3, activation="softmax")(shared(a_in)))            # shared reads the input
    second = pn.Model(b_in, Dense(3, activation="softmax")(shared(Dense(6)(b_in))))  # shared reads a layer
    for model in (first, second, first):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = model.fit(X, Y, epochs=2, batch_size=32, verbose=0)
        assert np.isfinite(history.history["loss"]).all()


def test_batch_normalization_trains_its_moving_statistics(backend, tmp_path, capsys):
    pn.set_seed(1)
    model = pn.Sequential([pn.Input((6,)), Dense(8), BatchNormalization(momentum=0.9), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    bn = model.layers[1]
    model.fit(X * 3 + 1, Y, epochs=3, batch_size=32, verbose=0)
    gamma, beta, moving_mean, moving_variance = bn.get_weights()
    activations = (X * 3 + 1) @ model.layers[0].get_weights()[0] + model.layers[0].get_weights()[1]
    assert np.abs(moving_mean).max() > 0.1 and np.abs(moving_variance - 1).max() > 0.1   # they moved
    np.testing.assert_allclose(moving_mean, activations.mean(axis=0), rtol=0.3, atol=0.3)
    model.summary()
    assert "Non-trainable params: 16" in capsys.readouterr().out
    model.save(tmp_path / "bn.pnet")
    again = pn.load_model(tmp_path / "bn.pnet")
    np.testing.assert_allclose(again.predict(X), model.predict(X), rtol=1e-5, atol=1e-6)
    bn.trainable = False   # Keras 3: a frozen BatchNormalization runs in inference mode
    frozen = bn.get_weights()
    model.fit(X * 3 + 1, Y, epochs=1, batch_size=32, verbose=0)
    for a, b in zip(frozen, bn.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_normalization_adapts_to_the_data(backend):
    data = rng.normal(5.0, 3.0, (200, 4)).astype(np.float32)
    norm = Normalization()
    norm.adapt(data)
    model = pn.Sequential([pn.Input((4,)), norm, Dense(1)])
    out = pn.Sequential([pn.Input((4,)), norm]).predict(data)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0), 1.0, rtol=1e-3)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data, data[:, :1], epochs=1, verbose=0)
    np.testing.assert_allclose(norm.get_weights()[0], data.mean(axis=0), rtol=1e-4)   # not trained
    assert model.count_params() == 8 + 5 and len(model.graph.trainable_params()) == 1


def convnet(input_shape):
    pn.set_seed(2)
    return pn.Sequential([pn.Input(input_shape), Conv2D(6, 3, activation="relu"), BatchNormalization(),
                          MaxPooling2D(2), Conv2D(8, 3, padding="same", activation="relu"),
                          GlobalAveragePooling2D(), Dropout(0.2), Dense(3, activation="softmax")])


def test_channels_last_with_one_configuration_line(backend, monkeypatch):
    """A Keras convnet on NHWC images: pn.config.set_image_data_format("channels_last") is the
    one line; the same network on NCHW data gives the same training."""
    images = rng.standard_normal((64, 12, 12, 1)).astype(np.float32)
    labels = (images[:, :6, :, 0].mean(axis=(1, 2)) > 0).astype(np.int64) + (images[:, :, :6, 0].mean(axis=(1, 2)) > 0)
    curves = {}
    for data_format in ("channels_last", "channels_first"):
        monkeypatch.setattr(pn.config, "_image_data_format", data_format)
        data = images if data_format == "channels_last" else images.transpose(0, 3, 1, 2)
        model = convnet(data.shape[1:])
        assert model.layers[0].layout.data_format == data_format
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        curves[data_format] = model.fit(data, labels, epochs=3, batch_size=16, verbose=0, seed=3).history["loss"]
    np.testing.assert_allclose(curves["channels_last"], curves["channels_first"], rtol=1e-4)


def test_image_layers_name_the_layout_they_expect():
    with pytest.raises(InvalidArgumentError, match="Expected NHWC input \\(batch, height, width, channels\\)"):
        pn.Sequential([pn.Input((12, 12)), Conv2D(4, 3, data_format="channels_last")])
    with pytest.raises(InvalidArgumentError, match="Expected NCHW input \\(batch, channels, height, width\\)"):
        pn.Sequential([pn.Input((5,)), MaxPooling2D(2, data_format="channels_first")])
    with pytest.raises(InvalidArgumentError, match="Received: data_format='nhwc'"):
        Conv2D(4, 3, data_format="nhwc")


def test_a_keras_style_call_layer_is_told_what_to_write():
    class Doubling(pn.layers.Layer):
        def call(self, x):
            return 2 * x

    with pytest.raises(InvalidTypeError, match="defines Keras' `call`.*docs/custom_layers.md"):
        Doubling()


def test_check_layer_reports_a_wrong_gradient():
    class Wrong(Dense):
        def linear_backward(self, params, x, dz):
            dx, grads = super().linear_backward(params, x, dz)
            return dx, {**grads, "kernel": grads["kernel"] * 1.01}

    with pytest.raises(AssertionError, match="parameter kernel .* fails the finite-difference check.*worst element"):
        pn.testing.check_layer(lambda: Wrong(3), (4,), backends=["numpy"])


def test_flatten_channels_first_orders_features_as_keras():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    with B.use("numpy"):
        plain = Flatten()(x)
        keras_order = Flatten(data_format="channels_first")(x)
    np.testing.assert_array_equal(plain, x.reshape(2, -1))
    np.testing.assert_array_equal(keras_order, x.transpose(0, 2, 3, 1).reshape(2, -1))


def test_the_custom_layers_guide_runs():
    """Every code block of docs/custom_layers.md runs (the guide cannot rot)."""
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "custom_layers.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert len(blocks) == 2
    for block in blocks:
        namespace = {}
        exec(compile(block, "docs/custom_layers.md", "exec"), namespace)
        model = namespace["model"]
        assert model.predict(np.ones((2, *model.input_shape), np.float32)).shape[0] == 2


def test_model_config_json_and_clone():
    a, b = pn.Input((4,), name="a"), pn.Input((3,), name="b")
    hidden = pn.layers.Dense(5, activation="relu", name="hidden")(pn.layers.Concatenate()([a, b]))
    model = pn.Model([a, b], [pn.layers.Dense(2, activation="softmax", name="cls")(hidden),
                              pn.layers.Dense(1, name="reg")(hidden)], name="two")
    x = [np.ones((3, 4)), np.linspace(0, 1, 9).reshape(3, 3)]
    for rebuilt in (pn.Model.from_config(model.get_config()), pn.models.model_from_json(model.to_json()),
                    pn.models.clone_model(model)):
        assert (rebuilt.input_names, rebuilt.output_names) == (["a", "b"], ["cls", "reg"])
        assert rebuilt.count_params() == model.count_params() and rebuilt.name == "two"
        rebuilt.set_weights(model.get_weights())
        for got, want in zip(rebuilt.predict(x), model.predict(x)):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    clone = pn.models.clone_model(model)
    assert not any(np.array_equal(c, w) for c, w in zip(clone.get_weights()[::2], model.get_weights()[::2]))
    sequential = pn.Sequential([pn.Input((4,)), pn.layers.Dense(3, activation="relu"), pn.layers.Dropout(0.5)])
    again = pn.models.model_from_json(sequential.to_json())
    assert isinstance(again, pn.Sequential) and [type(layer) for layer in again.layers] == [
        type(layer) for layer in sequential.layers]
    renamed = pn.models.clone_model(sequential, clone_function=lambda layer: type(layer).from_config(
        {**layer.get_config(), "name": layer.name + "_copy"}))
    assert [layer.name for layer in renamed.layers] == [layer.name + "_copy" for layer in sequential.layers]
    with pytest.raises(pn.InvalidArgumentError, match="json_string"):
        pn.models.model_from_json("{not json")


def test_a_subclassed_model_with_call_says_how_to_port_it():
    class Classifier(pn.Model):
        def __init__(self):
            super().__init__()
            self.dense = pn.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(TypeError, match="subclasses Model with Keras' `call`.*pn.Model\\(inputs, outputs\\)"):
        Classifier()
