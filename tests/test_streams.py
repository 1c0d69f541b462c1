"""Data streams: a Sequence (Keras' PyDataset), generators and iterables train exactly as the
arrays they hold, with or without read-ahead threads, on every backend; a bad batch is named."""
import math
import threading

import numpy as np
import pytest

import portanet as pn
from portanet.errors import InvalidArgumentError, InvalidTypeError

rng = np.random.default_rng(11)
X = rng.standard_normal((96, 6)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
SW = rng.uniform(0.5, 1.5, 96)
BATCH = 16


class Batches(pn.data.Sequence):
    """The arrays in batches of BATCH, in order; counts the epochs it saw end."""

    def __init__(self, x, y, w=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.w, self.epochs_ended = x, y, w, 0
        self.threads = set()

    def __len__(self):
        return math.ceil(len(self.x) / BATCH)

    def __getitem__(self, i):
        self.threads.add(threading.current_thread().name)
        rows = slice(i * BATCH, (i + 1) * BATCH)
        return (self.x[rows], self.y[rows]) if self.w is None else (self.x[rows], self.y[rows], self.w[rows])

    def on_epoch_end(self):
        self.epochs_ended += 1


def batches(x, y, w=None):
    for i in range(0, len(x), BATCH):
        yield (x[i:i + BATCH], y[i:i + BATCH]) if w is None else (x[i:i + BATCH], y[i:i + BATCH], w[i:i + BATCH])


def forever(x, y):
    while True:
        yield from batches(x, y)


def model():
    pn.set_seed(0)
    m = pn.Sequential([pn.Input((6,)), pn.layers.Dense(8, activation="relu"), pn.layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    return m


def reference(weighted=False, epochs=2):
    m = model()
    history = m.fit(X, Y, sample_weight=SW if weighted else None, batch_size=BATCH, epochs=epochs, shuffle=False,
                    verbose=0, validation_data=(X[:32], Y[:32]))
    return m, history.history


def assert_same_training(m, history, want_model, want_history):
    for key in want_history:
        np.testing.assert_allclose(history[key], want_history[key], rtol=1e-5, err_msg=key)
    for got, want in zip(m.get_weights(), want_model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class Reiterable:
    """An iterable that starts over at each iter() (as a tf.data.Dataset does)."""

    def __iter__(self):
        return batches(X, Y)


@pytest.mark.parametrize("kind", ["sequence", "sequence-threads", "generator", "generator-thread", "iterable"])
def test_streams_train_as_their_arrays(backend, kind):
    want_model, want = reference()
    m = model()
    validation = Batches(X[:32], Y[:32])
    if kind.startswith("sequence"):
        source = Batches(X, Y, workers=3 if kind.endswith("threads") else 1)
        history = m.fit(source, epochs=2, shuffle=False, verbose=0, validation_data=validation)
        assert source.epochs_ended == 2
        if kind.endswith("threads"):
            assert any(name.startswith("portanet-batches") for name in source.threads)
    elif kind.startswith("generator"):
        history = m.fit(forever(X, Y), steps_per_epoch=6, epochs=2, verbose=0, validation_data=forever(X[:32], Y[:32]),
                        validation_steps=2, workers=2 if kind.endswith("thread") else None)
    else:
        history = m.fit(Reiterable(), epochs=2, verbose=0, validation_data=validation)
    assert_same_training(m, history.history, want_model, want)
    np.testing.assert_allclose(m.evaluate(Batches(X, Y), verbose=0), want_model.evaluate(X, Y, batch_size=BATCH, verbose=0),
                               rtol=1e-5)
    np.testing.assert_allclose(m.predict(batches(X, Y)), want_model.predict(X), rtol=1e-5, atol=1e-6)


def test_sample_weights_from_the_stream(backend):
    want_model, want = reference(weighted=True)
    m = model()
    history = m.fit(Batches(X, Y, SW), epochs=2, shuffle=False, verbose=0, validation_data=(X[:32], Y[:32]))
    assert_same_training(m, history.history, want_model, want)


def test_a_sequence_is_shuffled_by_batch_with_the_seed():
    seen = []

    class Recording(Batches):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    model().fit(Recording(X, Y), epochs=2, verbose=0, seed=4)
    first, second = seen[:6], seen[6:]
    assert sorted(first) == sorted(second) == list(range(6)) and first != second
    again = list(seen)
    seen.clear()
    model().fit(Recording(X, Y), epochs=2, verbose=0, seed=4)
    assert seen == again


def test_a_generator_is_read_on_across_epochs():
    """With steps_per_epoch an iterator continues where the last epoch stopped (Keras)."""
    m = model()
    served = []

    def counting():
        for i, item in enumerate(forever(X, Y)):
            served.append(i)
            yield item

    m.fit(counting(), steps_per_epoch=4, epochs=3, verbose=0)
    assert served == list(range(12))


def test_an_unbuilt_sequential_builds_from_the_first_batch():
    m = pn.Sequential([pn.layers.Dense(4, activation="relu"), pn.layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(forever(X, Y), steps_per_epoch=3, epochs=1, verbose=0)
    assert m.input_shape == (6,)


def test_a_generator_that_runs_dry_keeps_what_was_trained():
    m = model()
    start = [w.copy() for w in m.get_weights()]
    with pytest.raises(InvalidArgumentError, match=r"steps_per_epoch=10.*ran out after 6 batches in epoch 1"):
        m.fit(batches(X, Y), steps_per_epoch=10, epochs=1, verbose=0)
    trained = model()
    trained.fit(X, Y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for got, want, before in zip(m.get_weights(), trained.get_weights(), start):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)   # the 6 batches' training is kept
        assert not np.array_equal(got, before)


def test_an_exhausted_generator_in_a_later_epoch_is_named():
    with pytest.raises(InvalidArgumentError, match="ran out after 0 batches in epoch 2.*loops forever"):
        model().fit(batches(X, Y), epochs=2, verbose=0)


BAD = [
    ("wrong-shape", lambda i, x, y: (x[:, :5], y) if i == 2 else (x, y), InvalidArgumentError,
     r"batch 2 \(epoch 1\) of `x`.*Expected \(batch, 6\)"),
    ("wrong-type", lambda i, x, y: ("text", y) if i == 1 else (x, y), InvalidTypeError, r"batch 1 .*array of numbers"),
    ("not-a-tuple", lambda i, x, y: [x, y, y, y] if i == 3 else (x, y), InvalidArgumentError,
     r"batch 3 .*tuples \(x, y\) or \(x, y, sample_weight\)"),
    ("bad-labels", lambda i, x, y: (x, y + 5) if i == 4 else (x, y), InvalidArgumentError, r"batch 4 .*class indices"),
    ("lengths", lambda i, x, y: (x, y[:3]) if i == 1 else (x, y), InvalidArgumentError, "as many examples"),
]


@pytest.mark.parametrize("name, corrupt, error, match", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_batch_is_named_and_nothing_is_lost(name, corrupt, error, match, workers):
    m = model()
    items = [corrupt(i, x, y) for i, (x, y) in enumerate(batches(X, Y))]
    with pytest.raises(error, match=match):
        m.fit(iter(items), steps_per_epoch=6, epochs=1, verbose=0, workers=workers)
    good = int(match.split("batch ")[1][0]) if "batch " in match else 1
    trained = model()
    trained.fit(X[:good * BATCH], Y[:good * BATCH], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(m.get_weights(), trained.get_weights()):  # the batches before the bad one count
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_stream_arguments_are_checked():
    m = model()
    with pytest.raises(InvalidArgumentError, match="`y`. Expected None when `x` is a stream"):
        m.fit(forever(X, Y), Y, steps_per_epoch=2, verbose=0)
    with pytest.raises(InvalidArgumentError, match="`use_multiprocessing`"):
        Batches(X, Y, use_multiprocessing=True)
    with pytest.raises(InvalidArgumentError, match="`workers`"):
        m.fit(Batches(X, Y), workers=0, verbose=0)
    with pytest.raises(InvalidArgumentError, match="`validation_split`"):
        m.fit(Batches(X, Y), validation_split=0.2, verbose=0)
    with pytest.raises(InvalidArgumentError, match="`steps_per_epoch`"):
        m.fit(forever(X, Y), steps_per_epoch=0, verbose=0)
