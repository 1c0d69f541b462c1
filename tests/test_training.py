"""Callbacks, metrics against scikit-learn, save/load safety, and bad input to fit/evaluate/predict."""
import json
import os
import struct

import numpy as np
import pytest

import portanet as pn
from portanet import backend as B
from portanet import callbacks, metrics
from portanet.errors import InvalidArgumentError
from portanet.io import ModelFileError
from portanet.layers import Dense

rng = np.random.default_rng(1)
X = rng.standard_normal((200, 5)).astype(np.float32)
Y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def model(seed=0, classes=2, loss="sparse_categorical_crossentropy", lr=0.01, metrics_=("accuracy",)):
    pn.set_seed(seed)
    m = pn.Sequential([pn.Input((5,)), Dense(8, activation="tanh"), Dense(classes, activation="softmax")])
    m.compile(optimizer=pn.optimizers.Adam(lr), loss=loss, metrics=list(metrics_))
    return m


# ----- metrics -----------------------------------------------------------------------------------
def test_metrics_equal_sklearn(backend):
    skm = pytest.importorskip("sklearn.metrics")
    y_true = rng.integers(0, 2, 500)
    scores = np.clip(y_true * 0.3 + rng.random(500) * 0.7, 0, 1).astype(np.float32)
    yt, sp = backend.asarray(y_true.astype(np.float32).reshape(-1, 1)), backend.asarray(scores.reshape(-1, 1))
    pred = scores > 0.5
    for metric, expected in ((metrics.Precision(), skm.precision_score(y_true, pred)),
                             (metrics.Recall(), skm.recall_score(y_true, pred)),
                             (metrics.F1Score(), skm.f1_score(y_true, pred)),
                             (metrics.BinaryAccuracy(), skm.accuracy_score(y_true, pred))):
        assert float(backend.to_numpy(metric(yt, sp))) == pytest.approx(expected, rel=1e-5), metric.name
    auc = float(backend.to_numpy(metrics.AUC()(yt, sp)))
    assert auc == pytest.approx(skm.roc_auc_score(y_true, scores), abs=5e-3)  # 200 buckets

    labels = rng.integers(0, 4, 300)
    probs = rng.random((300, 4)).astype(np.float32)
    lt, pt = backend.asarray(labels.astype(np.int32)), backend.asarray(probs)
    for metric, expected in (
            (metrics.get("precision", pn.losses.get("sparse_categorical_crossentropy")),
             skm.precision_score(labels, probs.argmax(1), average="macro")),
            (metrics.get("f1_score", pn.losses.get("sparse_categorical_crossentropy")),
             skm.f1_score(labels, probs.argmax(1), average="macro")),
            (metrics.SparseCategoricalAccuracy(), skm.accuracy_score(labels, probs.argmax(1))),
            (metrics.TopKCategoricalAccuracy(k=2, sparse=True),
             skm.top_k_accuracy_score(labels, probs, k=2))):
        assert float(backend.to_numpy(metric(lt, pt))) == pytest.approx(expected, rel=1e-5), metric.name


def test_host_reports_equal_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
    report = metrics.classification_report(y_true, y_pred, target_names=["a", "b", "c"])
    assert "macro avg" in report and "weighted avg" in report
    # a named class that occurs in neither y_true nor y_pred still gets its (empty) row
    report = metrics.classification_report([0, 1, 1], [0, 1, 0], target_names=["a", "b", "c"])
    assert [line.split()[0] for line in report.splitlines()[2:5]] == ["a", "b", "c"]
    assert report.splitlines()[4].split()[1:] == ["0.00", "0.00", "0.00", "0"]
    with pytest.raises(InvalidArgumentError, match="num_classes"):
        metrics.confusion_matrix([0, 3], [0, 1], num_classes=3)
    t, s = rng.integers(0, 2, 60), rng.random(60).round(1)
    for ours, theirs in zip(metrics.roc_curve(t, s), skm.roc_curve(t, s, drop_intermediate=False)):
        np.testing.assert_allclose(ours, theirs)
    for ours, theirs in zip(metrics.precision_recall_curve(t, s), skm.precision_recall_curve(t, s)):
        np.testing.assert_allclose(ours, theirs)


def test_accuracy_follows_the_loss():
    assert isinstance(metrics.get("accuracy", pn.losses.get("sparse_categorical_crossentropy")),
                      metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.get("accuracy", pn.losses.get("categorical_crossentropy")), metrics.CategoricalAccuracy)
    binary = metrics.get("accuracy", pn.losses.BinaryCrossentropy(from_logits=True))
    assert isinstance(binary, metrics.BinaryAccuracy) and binary.threshold == 0.0


# ----- callbacks ---------------------------------------------------------------------------------
class Recorder(callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def test_early_stopping_stops_at_the_right_epoch_and_restores_best():
    m = model(lr=0.3)
    recorder = Recorder()
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = m.fit(X, Y, epochs=60, batch_size=20, validation_split=0.3, verbose=0, callbacks=[stop, recorder])
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < 60 and stop.stopped_epoch == len(val) - 1
    assert len(val) - 1 - best == 2  # stopped after `patience` epochs without improvement
    for got, want in zip(m.get_weights(), recorder.weights[best]):
        np.testing.assert_array_equal(got, want)


def test_early_stopping_restores_best_also_when_every_epoch_ran():
    m = model(lr=0.3)
    recorder = Recorder()
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=100, restore_best_weights=True)
    history = m.fit(X, Y, epochs=8, batch_size=20, validation_split=0.3, verbose=0, callbacks=[stop, recorder])
    best = int(np.argmin(history.history["val_loss"]))
    assert stop.stopped_epoch == 0 and len(history.epoch) == 8 and best < 7
    for got, want in zip(m.get_weights(), recorder.weights[best]):
        np.testing.assert_array_equal(got, want)


def test_model_checkpoint_writes_the_best(tmp_path):
    m = model(lr=0.3)
    path = tmp_path / "best.pnet"
    recorder = Recorder()
    history = m.fit(X, Y, epochs=8, batch_size=20, validation_split=0.3, verbose=0,
                    callbacks=[callbacks.ModelCheckpoint(path, save_best_only=True), recorder])
    best = int(np.argmin(history.history["val_loss"]))
    for got, want in zip(pn.load_model(path).get_weights(), recorder.weights[best]):
        np.testing.assert_array_equal(got, want)
    m.fit(X, Y, epochs=2, verbose=0, callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "e{epoch:02d}.pnet"),
                                                                          save_weights_only=True)])
    assert sorted(os.listdir(tmp_path)) == ["best.pnet", "e01.pnet", "e02.pnet"]


def test_terminate_on_nan_keeps_last_finite_weights(backend):
    m = model(lr=1e30, loss="mse", classes=1, metrics_=())
    m.layers[-1].activation = pn.activations.linear
    y = rng.standard_normal((200, 1)).astype(np.float32) * 1e19
    recorder = Recorder()
    with pytest.warns(RuntimeWarning, match="TerminateOnNaN stopped training"):
        history = m.fit(X, y, epochs=5, batch_size=10, verbose=0, callbacks=[callbacks.TerminateOnNaN(), recorder])
    assert len(history.epoch) == 1  # stopped in the first epoch
    assert all(np.all(np.isfinite(w)) for w in m.get_weights())


def test_learning_rate_callbacks_and_csv(tmp_path):
    m = model()
    seen = []
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    plateau = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)

    class Spy(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(self.model.learning_rate)

    csv_path = tmp_path / "log.csv"
    m.fit(X, Y, epochs=3, verbose=0, callbacks=[sched, Spy(), callbacks.CSVLogger(csv_path)])
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3])
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("epoch,") and len(lines) == 4
    m.learning_rate = 1.0
    m.fit(X, Y, epochs=3, verbose=0, callbacks=[plateau])
    assert m.learning_rate == pytest.approx(0.25)  # epoch 1 sets the baseline; epochs 2 and 3 halve it


def test_verbose_modes(capsys):
    m = model()
    m.fit(X, Y, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "loss:" in out and "accuracy:" in out
    m.fit(X, Y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


# ----- saving and loading ------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["numpy", "jax", "strict"])
def test_saved_on_one_backend_loads_on_another(backend, source, tmp_path):
    if not B.installed(source):
        pytest.skip(f"{source} not installed")
    path = tmp_path / "m.pnet"
    with B.use(source):
        m = model()
        m.fit(X, Y, epochs=2, verbose=0)
        expected = m.predict(X)
        m.save(path)
    again = pn.load_model(path)
    np.testing.assert_allclose(again.predict(X), expected, rtol=1e-5, atol=1e-6)
    again.fit(X, Y, epochs=1, verbose=0)  # optimizer state restored and usable


def test_functional_model_roundtrip(tmp_path):
    inputs = pn.Input((5,))
    h = Dense(4, activation="relu", name="h")(inputs)
    out = Dense(2, activation="softmax", name="o")(pn.layers.Concatenate()([h, inputs]))
    m = pn.Model(inputs, out)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    m.save(tmp_path / "f.pnet")
    np.testing.assert_array_equal(pn.load_model(tmp_path / "f.pnet").predict(X), m.predict(X))


def test_weights_only_and_mismatch(tmp_path):
    m = model()
    m.save_weights(tmp_path / "w.pnet")
    other = model(seed=5)
    other.load_weights(tmp_path / "w.pnet")
    np.testing.assert_array_equal(other.predict(X), m.predict(X))
    with pytest.raises(ModelFileError, match="weights only"):
        pn.load_model(tmp_path / "w.pnet")
    bigger = model(classes=3)
    before = bigger.get_weights()
    with pytest.raises(ModelFileError, match="Expected weights/.* of shape"):
        bigger.load_weights(tmp_path / "w.pnet")
    for got, want in zip(bigger.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_truncated_and_future_files_are_rejected(tmp_path):
    m = model()
    good = tmp_path / "m.pnet"
    m.save(good)
    blob = good.read_bytes()
    (tmp_path / "truncated.pnet").write_bytes(blob[:-10])
    with pytest.raises(ModelFileError, match="truncated"):
        pn.load_model(tmp_path / "truncated.pnet")
    (tmp_path / "tiny.pnet").write_bytes(blob[:5])
    with pytest.raises(ModelFileError, match="not a portanet model"):
        pn.load_model(tmp_path / "tiny.pnet")
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header["__metadata__"]["format_version"] = "99"
    encoded = json.dumps(header).encode()
    (tmp_path / "future.pnet").write_bytes(struct.pack("<Q", len(encoded)) + encoded + blob[8 + n:])
    with pytest.raises(ModelFileError, match="format version '99'"):
        pn.load_model(tmp_path / "future.pnet")
    with pytest.raises(FileNotFoundError):
        pn.load_model(tmp_path / "missing.pnet")
    with pytest.raises(InvalidArgumentError, match="directory"):
        pn.load_model(tmp_path)


def test_a_pickle_is_rejected_without_running_it(tmp_path):
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pnet"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelFileError):
        pn.load_model(path)
    np.save(tmp_path / "evil.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFileError):
        pn.load_model(tmp_path / "evil.npy")
    assert not marker.exists()


def test_a_file_cannot_name_arbitrary_classes(tmp_path):
    m = model()
    path = tmp_path / "m.pnet"
    m.save(path)
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    spec = json.loads(header["__metadata__"]["model"])
    spec["config"]["layers"][0]["class_name"] = "os.system"
    header["__metadata__"]["model"] = json.dumps(spec)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + blob[8 + n:])
    with pytest.raises(InvalidArgumentError, match="portanet layer class"):
        pn.load_model(path)


def test_trainable_changed_after_compile_takes_effect(backend):
    """Freezing (then unfreezing) a layer between fits, without compiling again: the compiled
    steps are made anew, the frozen layer keeps its weights, the optimizer state follows."""
    pn.set_seed(0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = pn.Sequential([pn.Input((6,)), Dense(8, activation="relu"), Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.layers[0].trainable = False
    before = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.array_equal(after[2], before[2])
    model.layers[0].trainable = True
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(model.get_weights()[0], after[0])
