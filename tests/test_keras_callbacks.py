"""Callbacks called exactly as Keras 3 calls them (the same hooks, in the same order, with the
same logs), LambdaCallback, BackupAndRestore (a killed fit resumes to the unbroken result, on
every backend) and TensorBoard."""
import sys
import warnings

import numpy as np
import pytest

import portanet as pn
from portanet.errors import InvalidTypeError, MissingDependencyError

rng = np.random.default_rng(2)
X = rng.standard_normal((40, 4))
Y = rng.integers(0, 3, 40)


def recorder(base):
    """A callback class on `base` (Keras' or ours) written as the Keras docs write them: every
    hook takes `logs` without a default."""

    class Recorder(base):
        def __init__(self):
            super().__init__()
            self.calls = []

        def record(self, hook, index, logs):
            assert isinstance(logs, dict), hook
            self.calls.append((hook, index, tuple(sorted(logs))))

        def on_train_begin(self, logs): self.record("train_begin", None, logs)
        def on_train_end(self, logs): self.record("train_end", None, logs)
        def on_epoch_begin(self, epoch, logs): self.record("epoch_begin", epoch, logs)
        def on_epoch_end(self, epoch, logs): self.record("epoch_end", epoch, logs)
        def on_train_batch_begin(self, batch, logs): self.record("train_batch_begin", batch, logs)
        def on_train_batch_end(self, batch, logs): self.record("train_batch_end", batch, logs)
        def on_test_begin(self, logs): self.record("test_begin", None, logs)
        def on_test_end(self, logs): self.record("test_end", None, logs)
        def on_test_batch_begin(self, batch, logs): self.record("test_batch_begin", batch, logs)
        def on_test_batch_end(self, batch, logs): self.record("test_batch_end", batch, logs)
        def on_predict_begin(self, logs): self.record("predict_begin", None, logs)
        def on_predict_end(self, logs): self.record("predict_end", None, logs)
        def on_predict_batch_begin(self, batch, logs): self.record("predict_batch_begin", batch, logs)
        def on_predict_batch_end(self, batch, logs): self.record("predict_batch_end", batch, logs)

    return Recorder()


def classifier(ns):
    inputs = ns.Input((4,))
    return ns.Model(inputs, ns.layers.Dense(3, activation="softmax")(ns.layers.Dense(6, activation="relu")(inputs)))


def test_hooks_are_called_as_keras_calls_them(keras):
    runs = {}
    for name, ns, base in (("keras", keras, keras.callbacks.Callback), ("portanet", pn, pn.callbacks.Callback)):
        model = classifier(ns)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["acc"])
        callback = recorder(base)
        history = model.fit(X, Y, batch_size=16, epochs=2, validation_data=(X[:20], Y[:20]), callbacks=[callback],
                            verbose=0)
        model.evaluate(X, Y, batch_size=16, callbacks=[callback], verbose=0)
        model.predict(X, batch_size=16, callbacks=[callback], verbose=0)
        runs[name] = callback.calls, sorted(history.history)
    assert runs["portanet"][0] == runs["keras"][0]
    assert runs["portanet"][1] == runs["keras"][1] == ["acc", "loss", "val_acc", "val_loss"]  # no "seconds"


def test_batch_logs_are_the_running_loss_and_metrics(backend):
    pn.set_seed(0)
    model = classifier(pn)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    seen, ends = [], []
    alias = pn.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: seen.append((batch, dict(logs))),
                                        on_epoch_end=lambda epoch, logs: ends.append(dict(logs)))
    model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, callbacks=[alias], verbose=0)
    assert [b for b, _ in seen] == [0, 1, 2]
    assert set(seen[-1][1]) == {"loss", "acc"}
    for key in ("loss", "acc"):  # the last batch's running values are the epoch's
        assert seen[-1][1][key] == pytest.approx(ends[0][key], rel=1e-6)
    assert seen[0][1]["loss"] != seen[-1][1]["loss"]


def test_lambda_callback_refuses_unknown_hooks():
    with pytest.raises(TypeError, match="on_epoch_ending"):
        pn.callbacks.LambdaCallback(on_epoch_ending=print)


class Killed(Exception):
    pass


class KillAfter(pn.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs):
        if epoch == self.epoch:
            raise Killed


def test_backup_and_restore_resumes_a_killed_fit(backend, tmp_path):
    def fresh():
        pn.set_seed(0)
        model = pn.Sequential([pn.Input((4,)), pn.layers.Dense(6, activation="relu"), pn.layers.Dropout(0.2),
                               pn.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    unbroken = fresh()
    want = unbroken.fit(X, Y, batch_size=8, epochs=4, verbose=0, seed=1).history["loss"]
    backup = pn.callbacks.BackupAndRestore(tmp_path / "backup")
    model = fresh()
    with pytest.raises(Killed):
        model.fit(X, Y, batch_size=8, epochs=4, verbose=0, seed=1, callbacks=[backup, KillAfter(1)])
    assert (tmp_path / "backup" / "latest.pnet").exists()
    resumed = fresh()  # a new process: a new model of the same architecture
    history = resumed.fit(X, Y, batch_size=8, epochs=4, verbose=0, seed=1, callbacks=[backup])
    assert history.epoch == [2, 3]
    np.testing.assert_allclose(history.history["loss"], want[2:], rtol=1e-5)
    for got, expected in zip(resumed.get_weights(), unbroken.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "backup" / "latest.pnet").exists()   # deleted once training ended


def test_tensorboard_writes_epoch_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    model = classifier(pn)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    history = model.fit(X, Y, epochs=3, validation_split=0.25, verbose=0,
                        callbacks=[pn.callbacks.TensorBoard(tmp_path / "logs")])
    for part, prefix in (("train", ""), ("validation", "val_")):
        events = EventAccumulator(str(tmp_path / "logs" / part))
        events.Reload()
        assert sorted(events.Tags()["scalars"]) == ["epoch_acc", "epoch_loss"]
        values = [e.value for e in events.Scalars("epoch_loss")]
        np.testing.assert_allclose(values, history.history[prefix + "loss"], rtol=1e-6)


def test_tensorboard_names_the_keras_arguments_it_does_not_use(tmp_path):
    pytest.importorskip("tensorboard")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pn.callbacks.TensorBoard(tmp_path, histogram_freq=0, update_freq="epoch")   # Keras' defaults: silent
    with pytest.warns(UserWarning, match="scalars only; ignored: histogram_freq, write_images"):
        pn.callbacks.TensorBoard(tmp_path, histogram_freq=1, write_images=True, write_graph=True)
    with pytest.raises(InvalidTypeError, match="Received: histogram_frequency=1"):
        pn.callbacks.TensorBoard(tmp_path, histogram_frequency=1)


def test_tensorboard_without_the_package_says_what_to_install(monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "tensorboard"] + ["tensorboard"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError, match="pip install tensorboard"):
        pn.callbacks.TensorBoard("logs")
