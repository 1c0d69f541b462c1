"""The catalog of bad inputs: every public entry point refuses them with a portanet error whose
message names the argument, what was expected and what was received, before any state changes."""
import json
import struct

import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet import optimizers
from portanet.errors import BackendUnavailableError, InvalidArgumentError, InvalidTypeError, PortanetError
from portanet.io import ModelFileError
from portanet.layers import (AveragePooling2D, Concatenate, Conv2D, Dense, Dropout, Flatten, MaxPool2D,
                             Reshape)

rng = np.random.default_rng(2)
X = rng.standard_normal((120, 5)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)
NAN_ROW_7 = np.where(np.arange(120)[:, None] == 7, np.nan, X)
INF_ROW_3 = np.where(np.arange(120)[:, None] == 3, np.inf, X)


def nan_labels():
    y = np.eye(2, dtype=np.float32)[Y]
    y[11, 0] = np.nan
    return y


# (id, call, error class, message pattern). Constructors and configuration first.
CONSTRUCTION = [
    ("dense-negative-units", lambda: Dense(-1), InvalidArgumentError, "Received: units=-1"),
    ("dense-zero-units", lambda: Dense(0), InvalidArgumentError, "Received: units=0"),
    ("dense-float-units", lambda: Dense(2.5), InvalidArgumentError, "Received: units=2.5"),
    ("dense-nan-units", lambda: Dense(float("nan")), InvalidArgumentError, "Received: units=nan"),
    ("dense-activation", lambda: Dense(3, activation="relux"), InvalidArgumentError, "Received: activation='relux'"),
    ("dense-callable-activation", lambda: Dense(3, activation=abs), InvalidTypeError, "Expected a name"),
    ("dense-initializer", lambda: Dense(3, kernel_initializer="nope"), InvalidArgumentError, "initializer='nope'"),
    ("dense-regularizer", lambda: Dense(3, kernel_regularizer="l3"), InvalidArgumentError, "regularizer='l3'"),
    ("dense-use-bias", lambda: Dense(3, use_bias="yes"), InvalidTypeError, "Received: use_bias='yes'"),
    ("layer-empty-name", lambda: Dense(3, name=""), InvalidArgumentError, "Received: name=''"),
    ("dropout-one", lambda: Dropout(1.0), InvalidArgumentError, "Received: rate=1.0"),
    ("dropout-negative", lambda: Dropout(-0.1), InvalidArgumentError, "Received: rate=-0.1"),
    ("dropout-nan", lambda: Dropout(float("nan")), InvalidArgumentError, "Received: rate=nan"),
    ("reshape-zero", lambda: Reshape((0, 2)), InvalidArgumentError, "target_shape"),
    ("concatenate-batch-axis", lambda: Concatenate(axis=0), InvalidArgumentError, "Received: axis=0"),
    ("input-zero-dim", lambda: pn.Input((0, 3)), InvalidArgumentError, "Received: shape=\\(0, 3\\)"),
    ("input-string", lambda: pn.Input("784"), InvalidArgumentError, "Received: shape='784'"),
    ("conv-filters", lambda: Conv2D(-4, 3), InvalidArgumentError, "filters"),
    ("conv-kernel", lambda: Conv2D(4, 0), InvalidArgumentError, "Received: kernel_size=0$"),
    ("conv-kernel-pair", lambda: Conv2D(4, (3, -1)), InvalidArgumentError, "Received: kernel_size=\\(3, -1\\)$"),
    ("conv-padding-pair", lambda: Conv2D(4, 3, padding=(1, -2)), InvalidArgumentError, "Received: padding=\\(1, -2\\)$"),
    ("conv-strides", lambda: Conv2D(4, 3, strides=0), InvalidArgumentError, "strides"),
    ("conv-padding-name", lambda: Conv2D(4, 3, padding="full"), InvalidArgumentError, "padding"),
    ("conv-negative-padding", lambda: Conv2D(4, 3, padding=-1), InvalidArgumentError, "padding"),
    ("pool-size", lambda: MaxPool2D(0), InvalidArgumentError, "pool_size"),
    ("conv-groups", lambda: pn.layers.Conv2D(5, 3, groups=2), InvalidArgumentError, "Received: groups=2"),
    ("conv-dilation", lambda: pn.layers.Conv2D(4, 3, dilation_rate=0), InvalidArgumentError, "dilation_rate=0"),
    ("conv-data-format", lambda: Conv2D(4, 3, data_format="NHWC"), InvalidArgumentError, "data_format='NHWC'"),
    ("conv1d-padding", lambda: pn.layers.Conv1D(4, 3, padding="full"), InvalidArgumentError, "padding='full'"),
    ("conv-transpose-padding", lambda: pn.layers.Conv2DTranspose(4, 3, padding=1), InvalidArgumentError,
     "padding=1"),
    ("upsampling-bilinear", lambda: pn.layers.UpSampling2D(interpolation="bilinear"), InvalidArgumentError,
     "interpolation='bilinear'"),
    ("zero-padding-negative", lambda: pn.layers.ZeroPadding2D(-1), InvalidArgumentError, "padding"),
    ("batchnorm-momentum", lambda: pn.layers.BatchNormalization(momentum=-0.1), InvalidArgumentError,
     "momentum=-0.1"),
    ("batchnorm-epsilon", lambda: pn.layers.BatchNormalization(epsilon=0), InvalidArgumentError, "epsilon=0"),
    ("batchnorm-batch-axis", lambda: pn.layers.BatchNormalization(axis=0), InvalidArgumentError, "axis=0"),
    ("layernorm-center", lambda: pn.layers.LayerNormalization(center="yes"), InvalidTypeError, "center='yes'"),
    ("normalization-half", lambda: pn.layers.Normalization(mean=1.0), InvalidArgumentError, "variance"),
    ("rescaling-scale", lambda: pn.layers.Rescaling("1/255"), InvalidTypeError, "scale='1/255'"),
    ("embedding-input-dim", lambda: pn.layers.Embedding(0, 3), InvalidArgumentError, "input_dim=0"),
    ("embedding-mask-zero", lambda: pn.layers.Embedding(5, 3, mask_zero=True), InvalidArgumentError,
     "mask_zero=True"),
    ("relu-max-value", lambda: pn.layers.ReLU(max_value=-1), InvalidArgumentError, "max_value=-1"),
    ("prelu-shared-axes", lambda: pn.layers.PReLU(shared_axes=[0]), InvalidArgumentError, "shared_axes=\\[0\\]"),
    ("dot-axes", lambda: pn.layers.Dot(axes=0), InvalidArgumentError, "axes=0"),
    ("cropping-too-much", lambda: pn.Sequential([pn.Input((1, 4, 4)), pn.layers.Cropping2D(2)]),
     InvalidArgumentError, "cropping"),
    ("subtract-three", lambda: pn.layers.subtract([pn.Input((2,))] * 3), InvalidArgumentError, "two equal shapes"),
    ("pool-padding", lambda: AveragePooling2D(2, padding="x"), InvalidArgumentError, "padding"),
    ("sgd-negative-lr", lambda: optimizers.SGD(-1), InvalidArgumentError, "learning_rate"),
    ("sgd-nan-lr", lambda: optimizers.SGD(float("nan")), InvalidArgumentError, "learning_rate"),
    ("sgd-string-lr", lambda: optimizers.SGD("fast"), (InvalidArgumentError, InvalidTypeError), "learning_rate"),
    ("sgd-momentum", lambda: optimizers.SGD(momentum=-0.1), InvalidArgumentError, "momentum"),
    ("adam-beta1", lambda: optimizers.Adam(beta_1=1.0), InvalidArgumentError, "beta_1"),
    ("adam-beta2", lambda: optimizers.Adam(beta_2=-0.1), InvalidArgumentError, "beta_2"),
    ("adam-epsilon", lambda: optimizers.Adam(epsilon=-1.0), InvalidArgumentError, "epsilon"),
    ("rmsprop-rho", lambda: optimizers.RMSprop(rho=1.5), InvalidArgumentError, "rho"),
    ("optimizer-name", lambda: optimizers.get("adamx"), InvalidArgumentError, "adamx"),
    ("backend-unknown", lambda: B.set("tensorflow"), InvalidArgumentError, "Received: backend='tensorflow'"),
    ("floatx-unknown", lambda: pn.set_floatx("float16"), InvalidArgumentError, "Received: floatx='float16'"),
    ("seed-not-int", lambda: pn.set_seed("42"), InvalidArgumentError, "Received: seed='42'"),
    ("plateau-factor", lambda: pn.callbacks.ReduceLROnPlateau(factor="0.5"), InvalidArgumentError,
     "Received: factor='0.5'"),
    ("plateau-patience", lambda: pn.callbacks.ReduceLROnPlateau(patience=-1), InvalidArgumentError,
     "Expected a non-negative int. Received: patience=-1"),
    ("plateau-cooldown", lambda: pn.callbacks.ReduceLROnPlateau(cooldown=1.5), InvalidArgumentError,
     "Received: cooldown=1.5"),
    ("plateau-min-lr", lambda: pn.callbacks.ReduceLROnPlateau(min_lr=-1e-3), InvalidArgumentError, "min_lr"),
    ("checkpoint-batch-per-epoch", lambda: pn.callbacks.ModelCheckpoint("ckpt-{batch}.pnet"), InvalidArgumentError,
     "Expected {batch} only with an int save_freq"),
]


@pytest.mark.parametrize("name, call, error, match", CONSTRUCTION, ids=[c[0] for c in CONSTRUCTION])
def test_construction(name, call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, PortanetError)


def test_backend_not_installed(monkeypatch):
    monkeypatch.setattr(B, "installed", lambda name: False)
    monkeypatch.setattr(B, "_loaded", {})
    with pytest.raises(BackendUnavailableError, match='pip install "portanet\\[strict\\]"'):
        B.load("strict")


def test_float64_where_the_device_has_none(monkeypatch):
    monkeypatch.setattr(type(B.load("numpy")), "has_float64", False)
    with B.use("numpy"), pytest.raises(InvalidArgumentError, match="has no float64"):
        pn.set_floatx("float64")
    assert pn.floatx() == "float32"


BUILDING = [
    ("kernel-larger-than-input", lambda: pn.Sequential([pn.Input((1, 5, 5)), Conv2D(4, 7)]), "kernel"),
    ("conv-on-flat-input", lambda: pn.Sequential([pn.Input((784,)), Conv2D(4, 3)]), "input"),
    ("pool-on-flat-input", lambda: pn.Sequential([pn.Input((784,)), MaxPool2D(2)]), "input"),
    ("reshape-wrong-size", lambda: pn.Sequential([pn.Input((12,)), Reshape((5, 5))]), "target_shape"),
    ("add-in-sequential", lambda: pn.Sequential([pn.Input((4,)), pn.layers.Add()]), "single-input"),
    ("not-a-layer", lambda: pn.Sequential([pn.Input((4,)), "dense"]), "Received: layer='dense'"),
    ("layers-not-a-list", lambda: pn.Sequential(Dense(3)), "Received: layers="),
    ("model-outputs-not-a-tensor", lambda: pn.Model(pn.Input((4,)), Dense(3)), "outputs"),
    ("model-inputs-not-input", lambda: pn.Model(Dense(3), None), "inputs"),
]


@pytest.mark.parametrize("name, call, match", BUILDING, ids=[b[0] for b in BUILDING])
def test_model_building(name, call, match):
    with pytest.raises((InvalidArgumentError, InvalidTypeError), match=match):
        call()


def test_flatten_missing_before_dense_on_images():
    model = pn.Sequential([pn.Input((1, 8, 8)), Conv2D(2, 3), Dense(10, activation="softmax")])
    with pytest.raises(InvalidArgumentError, match="Flatten"):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    fixed = pn.Sequential([pn.Input((1, 8, 8)), Conv2D(2, 3), Flatten(), Dense(10, activation="softmax")])
    fixed.compile(optimizer="adam", loss="sparse_categorical_crossentropy")


COMPILE = [
    ("unknown-loss", dict(loss="nope"), "Received: loss='nope'"),
    ("no-loss", dict(loss=None), "Received: loss=None"),
    ("unknown-metric", dict(loss="mse", metrics=["nope"]), "Received: metrics='nope'"),
    ("metrics-not-a-list", dict(loss="mse", metrics=3), "Received: metrics=3"),
    ("unknown-optimizer", dict(optimizer="nope", loss="mse"), "nope"),
    ("bad-jit-compile", dict(loss="mse", jit_compile="always"), "Received: jit_compile='always'"),
]


@pytest.fixture
def trained():
    pn.set_seed(0)
    model = pn.Sequential([pn.Input((5,)), Dense(4, activation="tanh"), Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, epochs=1, verbose=0)
    weights = [w.copy() for w in model.get_weights()]
    state = model.opt_state
    yield model
    for got, want in zip(model.get_weights(), weights):  # nothing changed
        np.testing.assert_array_equal(got, want)
    assert model.opt_state is state


@pytest.mark.parametrize("name, kwargs, match", COMPILE, ids=[c[0] for c in COMPILE])
def test_compile(trained, name, kwargs, match):
    optimizer, loss = trained.optimizer, trained.loss
    with pytest.raises((InvalidArgumentError, InvalidTypeError), match=match):
        trained.compile(**kwargs)
    assert trained.optimizer is optimizer and trained.loss is loss


def test_loss_incompatible_with_output():
    single = pn.Sequential([pn.Input((5,)), Dense(1, activation="sigmoid")])
    with pytest.raises(InvalidArgumentError, match="single output"):
        single.compile(loss="sparse_categorical_crossentropy")


FIT = [
    ("length-mismatch", lambda m: m.fit(X, Y[:-1]), InvalidArgumentError, "Expected as many examples as x \\(120\\)"),
    ("feature-size", lambda m: m.fit(X[:, :4], Y), InvalidArgumentError, "Expected \\(batch, 5\\)"),
    ("feature-rank", lambda m: m.fit(X[:, :, None], Y), InvalidArgumentError, "Expected \\(batch, 5\\)"),
    ("label-out-of-range", lambda m: m.fit(X, Y + 5), InvalidArgumentError, "class indices in \\[0, 1\\]"),
    ("negative-label", lambda m: m.fit(X, Y - 1), InvalidArgumentError, "labels from -1"),
    ("fractional-labels-sparse", lambda m: m.fit(X, Y + 0.5), InvalidTypeError, "not whole numbers"),
    ("one-hot-for-sparse", lambda m: m.fit(X, np.eye(2)[Y]), InvalidArgumentError, "look one-hot"),
    ("empty", lambda m: m.fit(X[:0], Y[:0]), InvalidArgumentError, "non-empty"),
    ("object-dtype", lambda m: m.fit(np.array([[object()] * 5] * 120), Y), InvalidTypeError, "array of numbers"),
    ("strings", lambda m: m.fit(np.array([["a"] * 5] * 120), Y), InvalidTypeError, "array of numbers"),
    ("x-none", lambda m: m.fit(None, Y), InvalidTypeError, "Received: x=None"),
    ("nan-in-x", lambda m: m.fit(NAN_ROW_7, Y), InvalidArgumentError, "first at index 7"),
    ("inf-in-x", lambda m: m.fit(INF_ROW_3, Y), InvalidArgumentError, "first at index 3"),
    ("batch-size-zero", lambda m: m.fit(X, Y, batch_size=0), InvalidArgumentError, "Received: batch_size=0"),
    ("batch-size-float", lambda m: m.fit(X, Y, batch_size=3.5), InvalidArgumentError, "Received: batch_size=3.5"),
    ("validation-split-one", lambda m: m.fit(X, Y, validation_split=1.0), InvalidArgumentError,
     "Received: validation_split=1.0"),
    ("validation-split-negative", lambda m: m.fit(X, Y, validation_split=-0.1), InvalidArgumentError,
     "Received: validation_split=-0.1"),
    ("validation-data-lengths", lambda m: m.fit(X, Y, validation_data=(X, Y[:3])), InvalidArgumentError,
     "validation_data\\[1\\]"),
    ("validation-data-shape", lambda m: m.fit(X, Y, validation_data=(X[:, :3], Y)), InvalidArgumentError,
     "validation_data\\[0\\]"),
    ("validation-data-type", lambda m: m.fit(X, Y, validation_data=X), InvalidTypeError, "validation_data"),
    ("epochs-negative", lambda m: m.fit(X, Y, epochs=-1), InvalidArgumentError, "Received: epochs=-1"),
    ("epochs-string", lambda m: m.fit(X, Y, epochs="3"), InvalidArgumentError, "Received: epochs='3'"),
    ("verbose", lambda m: m.fit(X, Y, verbose=5), InvalidArgumentError, "Received: verbose=5"),
    ("callbacks-not-callbacks", lambda m: m.fit(X, Y, callbacks=[print]), InvalidTypeError, "callbacks"),
    ("evaluate-batch-size", lambda m: m.evaluate(X, Y, batch_size=-3), InvalidArgumentError, "Received: batch_size=-3"),
    ("evaluate-labels", lambda m: m.evaluate(X, Y + 2), InvalidArgumentError, "class indices"),
    ("predict-shape", lambda m: m.predict(X[:, :2]), InvalidArgumentError, "Expected \\(batch, 5\\)"),
    ("predict-empty", lambda m: m.predict(np.zeros((0, 5))), InvalidArgumentError, "non-empty"),
    ("set-weights-shape", lambda m: m.set_weights([np.zeros((5, 4)), np.zeros(4), np.zeros((2, 4)), np.zeros(2)]),
     InvalidArgumentError, "Expected shape \\(4, 2\\)"),
    ("set-weights-count", lambda m: m.set_weights([np.zeros((5, 4))]), InvalidArgumentError, "a list of 4 arrays"),
    ("sample-weight-length", lambda m: m.fit(X, Y, sample_weight=np.ones(7)), InvalidArgumentError,
     "sample_weight.shape`. Expected \\(120,\\): one weight per example"),
    ("sample-weight-negative", lambda m: m.fit(X, Y, sample_weight=-np.ones(120)), InvalidArgumentError,
     "finite, non-negative weights"),
    ("sample-and-class-weight", lambda m: m.fit(X, Y, sample_weight=np.ones(120), class_weight={0: 1.0}),
     InvalidArgumentError, "class_weight"),
    ("class-weight-keys", lambda m: m.fit(X, Y, class_weight={"cat": 1.0}), InvalidTypeError,
     "class index \\(int\\)"),
    ("train-on-batch-labels", lambda m: m.train_on_batch(X, Y + 9), InvalidArgumentError, "class indices"),
    ("train-on-batch-compiled-shape", lambda m: m.train_on_batch(X[:, :4], Y), InvalidArgumentError,
     "Expected \\(batch, 5\\)"),
    ("test-on-batch-weights", lambda m: m.test_on_batch(X, Y, sample_weight=np.ones(3)), InvalidArgumentError,
     "sample_weight.shape"),
    ("x-dict-keys", lambda m: m.fit({"pixels": X}, Y), InvalidArgumentError, "keyed by the model's input names"),
    ("steps-per-epoch", lambda m: m.fit(X, Y, steps_per_epoch=-2), InvalidArgumentError,
     "Received: steps_per_epoch=-2"),
    ("validation-freq", lambda m: m.fit(X, Y, validation_freq=0), InvalidArgumentError, "validation_freq"),
]


@pytest.mark.parametrize("name, call, error, match", FIT, ids=[f[0] for f in FIT])
def test_fit_evaluate_predict(trained, name, call, error, match):
    with pytest.raises(error, match=match) as info:
        call(trained)
    assert isinstance(info.value, PortanetError)


def two_outputs():
    pn.set_seed(0)
    a, b = pn.Input((5,), name="a"), pn.Input((3,), name="b")
    hidden = Dense(4, activation="relu")(pn.layers.Concatenate()([a, b]))
    return pn.Model([a, b], [Dense(2, activation="softmax", name="cls")(hidden), Dense(1, name="reg")(hidden)])


MULTI_COMPILE = [
    ("loss-unknown-output", dict(loss={"cls": "mse", "rgr": "mse"}), "unknown keys \\['rgr'\\]"),
    ("loss-list-length", dict(loss=["mse"] * 3), "one entry per output \\(2"),
    ("loss-weights-type", dict(loss="mse", loss_weights=2.0), "loss_weights"),
    ("loss-weights-negative", dict(loss="mse", loss_weights=[1.0, -1.0]), "non-negative"),
    ("metrics-flat-list", dict(loss="mse", metrics=["mae", "mse", "acc"]), "one entry per output"),
    ("all-losses-none", dict(loss={"cls": None, "reg": None}), "a loss for at least one output"),
]


@pytest.mark.parametrize("name, kwargs, match", MULTI_COMPILE, ids=[c[0] for c in MULTI_COMPILE])
def test_compile_several_outputs(name, kwargs, match):
    model = two_outputs()
    with pytest.raises(PortanetError, match=match):
        model.compile(optimizer="sgd", **kwargs)
    assert model.heads is None


MULTI_FIT = [
    ("x-list-length", lambda m: m.fit([X], [Y, Y]), "a list of 2 arrays, one per input \\(a, b\\)"),
    ("y-dict-keys", lambda m: m.fit([X, X[:, :3]], {"cls": Y}), "keyed by the model's output names"),
    ("x-second-shape", lambda m: m.fit([X, X], [Y, Y]), "x\\['b'\\].shape"),
    ("class-weight", lambda m: m.fit([X, X[:, :3]], [Y, Y], class_weight={0: 2.0}), "a model with one output"),
    ("sample-weight-list", lambda m: m.fit([X, X[:, :3]], [Y, Y], sample_weight=[np.ones(120)]),
     "a list of 2 arrays, one per output"),
    ("lengths", lambda m: m.fit([X, X[:60, :3]], [Y, Y]), "as many examples"),
]


@pytest.mark.parametrize("name, call, match", MULTI_FIT, ids=[c[0] for c in MULTI_FIT])
def test_fit_several_inputs_and_outputs(name, call, match):
    model = two_outputs()
    model.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy", "mse"])
    before = model.get_weights()
    with pytest.raises(PortanetError, match=match):
        call(model)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    assert model.opt_state is None and model.history is None


def test_categorical_needs_one_hot_and_binary_needs_0_1():
    pn.set_seed(0)
    m = pn.Sequential([pn.Input((5,)), Dense(2, activation="softmax")])
    m.compile(optimizer="sgd", loss="categorical_crossentropy")
    with pytest.raises(InvalidArgumentError, match="one-hot labels of shape \\(120, 2\\)"):
        m.fit(X, Y)
    with pytest.raises(InvalidArgumentError, match="first at index 11"):
        m.fit(X, nan_labels())
    b = pn.Sequential([pn.Input((5,)), Dense(1, activation="sigmoid")])
    b.compile(optimizer="sgd", loss="binary_crossentropy")
    with pytest.raises(InvalidArgumentError, match="values in \\[0, 1\\]"):
        b.fit(X, Y * 3)


def test_fit_before_compile():
    m = pn.Sequential([pn.Input((5,)), Dense(2)])
    with pytest.raises(InvalidArgumentError, match="compile\\(\\)"):
        m.fit(X, Y)
    with pytest.raises(InvalidArgumentError, match="compile\\(\\)"):
        m.evaluate(X, Y)


def rewrite_header(path, change):
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    change(header)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + blob[8 + n:])


def test_bad_files(trained, tmp_path):
    good = tmp_path / "m.pnet"
    trained.save(good)
    blob = good.read_bytes()
    cases = {"truncated.pnet": blob[:-10], "tiny.pnet": blob[:5], "garbage.pnet": b"\x10" * 64,
             "huge-header.pnet": struct.pack("<Q", 2**40) + blob[8:]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelFileError):
            pn.load_model(tmp_path / name)
        with pytest.raises(ModelFileError):
            trained.load_weights(tmp_path / name)
    future = tmp_path / "future.pnet"
    future.write_bytes(blob)
    rewrite_header(future, lambda h: h["__metadata__"].update(format_version="99"))
    with pytest.raises(ModelFileError, match="Received: format_version='99'"):
        pn.load_model(future)
    offsets = tmp_path / "offsets.pnet"
    offsets.write_bytes(blob)
    rewrite_header(offsets, lambda h: h["weights/0/kernel"].update(data_offsets=[0, 10**9]))
    with pytest.raises(ModelFileError, match="truncated or damaged"):
        pn.load_model(offsets)
    with pytest.raises(FileNotFoundError, match="missing.pnet"):
        pn.load_model(tmp_path / "missing.pnet")
    with pytest.raises(InvalidArgumentError, match="directory"):
        pn.load_model(tmp_path)
    with pytest.raises(InvalidArgumentError, match="directory"):
        trained.save(tmp_path)
    other = pn.Sequential([pn.Input((5,)), Dense(3), Dense(2)])
    other.save_weights(tmp_path / "other.pnet")
    with pytest.raises(ModelFileError, match="Expected weights/0/kernel of shape \\(5, 4\\)"):
        trained.load_weights(tmp_path / "other.pnet")


def test_catalog_size():
    assert len(CONSTRUCTION) + len(BUILDING) + len(COMPILE) + len(FIT) + 12 >= 50


def test_build_checks_its_input_shape():
    inputs = pn.Input((5,))
    model = pn.Model(inputs, Dense(2)(inputs))
    with pytest.raises(InvalidArgumentError, match="Expected \\(5,\\), this model's input shape. Received: input_shape=\\(4,\\)"):
        model.build((4,))
    model.build((5,))
    assert model.count_params() == 12
    stack = pn.Sequential([Dense(3)])
    with pytest.raises(InvalidArgumentError, match="Received: input_shape=None"):
        stack.build()
    stack.build((7,))
    assert stack.input_shape == (7,) and stack.get_weights()[0].shape == (7, 3)


def test_set_weights_of_numbers_is_a_clear_error():
    model = pn.Sequential([pn.Input((2,)), Dense(1)])
    before = model.get_weights()
    with pytest.raises(InvalidTypeError, match="Expected an array of shape \\(2, 1\\). Received: weights \\(dense.*/kernel\\)=1"):
        model.set_weights([1, 2])
    with pytest.raises(InvalidTypeError, match="Expected a list of arrays"):
        model.set_weights(np.zeros(3))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
