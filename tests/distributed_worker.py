"""Run by tests/test_distribution.py in a fresh process (JAX reads XLA_FLAGS and joins its peers
only at start): trains the test models on one device, or under DataParallel, and writes the
curves and weights to OUT (an .npz; in a run of several processes, process 0 writes).

    python tests/distributed_worker.py OUT MODE [COORDINATOR NUM_PROCESSES PROCESS_ID]

MODE: "single" (one device) or "parallel" (DataParallel over every device of every process).
"""
import os
import sys

os.environ.setdefault("PORTANET_BACKEND", "jax")

import numpy as np  # noqa: E402

import portanet as pn  # noqa: E402


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((192, 1, 8, 8)).astype("float32")
    y = (x[:, 0, :4].mean(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, 4:].mean(axis=(1, 2)) > 0)
    return x, y


def models():
    """The MLP and the small CNN with dropout of the issue."""
    mlp = pn.Sequential([pn.Input((1, 8, 8)), pn.layers.Flatten(), pn.layers.Dense(32, activation="relu"),
                         pn.layers.Dense(3, activation="softmax")])
    cnn = pn.Sequential([pn.Input((1, 8, 8)), pn.layers.Conv2D(4, 3, activation="relu"), pn.layers.MaxPooling2D(2),
                         pn.layers.Flatten(), pn.layers.Dropout(0.25), pn.layers.Dense(3, activation="softmax")])
    return {"mlp": mlp, "cnn": cnn}


def main():
    out, mode = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        pn.distribution.initialize(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    if mode == "parallel":
        pn.distribution.set_distribution(pn.distribution.DataParallel())
    x, y = data()
    results = {"devices": np.array(len(pn.distribution.list_devices()))}
    for name in ("mlp", "cnn"):
        pn.set_seed(0)
        model = models()[name]
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, batch_size=32, epochs=3, validation_split=0.25, verbose=0, seed=1)
        for key, values in history.history.items():
            results[f"{name}/{key}"] = np.array(values)
        for i, w in enumerate(model.get_weights()):
            results[f"{name}/weight{i}"] = w
        results[f"{name}/evaluate"] = np.array(model.evaluate(x, y, batch_size=40, verbose=0))
        results[f"{name}/predict"] = model.predict(x[:50], batch_size=20)
        model.save(out + f".{name}.pnet")   # written once (process 0), loaded onto the distribution
        results[f"{name}/reloaded"] = pn.load_model(out + f".{name}.pnet").predict(x[:50], batch_size=20)
    if mode == "parallel":
        try:
            model.fit(x, y, batch_size=30, verbose=0)
        except pn.InvalidArgumentError as error:
            results["batch_error"] = np.array(str(error))
    if pn.distribution.process_index() == 0:
        np.savez(out, **results)


if __name__ == "__main__":
    main()
