"""Gradient descent in one dimension, then four optimizers on an MLP.

    python examples/optimizers.py              # 10 epochs of each optimizer, batch 50
    python examples/optimizers.py --quick      # a smoke run of a few seconds

Part 1: portanet.optimizers.SGD minimises J(x) = x sin(x^2) from x = 1.5 and x = -2 with learning
rates 0.01 and 0.001, on a one-element array of the current backend (dJ/dx = sin(x^2) +
2 x^2 cos(x^2)). Prints x after 10, 100 and 1000 steps and plots the trajectories (descent.png):
the large rate reaches a minimum in about 20 steps, the small one needs about 300, and the two
starts end in different local minima.

Part 2: a 784-40-40-40-10 ReLU/softmax network trained with SGD, Adam, Adagrad and RMSprop (Keras'
default learning rates), batch 50, the last 30% of the training set held out for validation,
on MNIST when it is found (see portanet.datasets; --download fetches it), else on Fashion-MNIST.
Prints one line per epoch, each optimizer's test loss and accuracy and seconds per epoch, and
plots the validation accuracy of all four (val_accuracy.png in --out).
"""
import numpy as np

import _common as common
import portanet as pn
from portanet import plot
from portanet.layers import Dense

RATES = (0.01, 0.001)
STARTS = (1.5, -2.0)
REPORTED_STEPS = (10, 100, 1000)
OPTIMIZERS = {"SGD": "sgd", "Adam": "adam", "Adagrad": "adagrad", "RMSprop": "rmsprop"}


def cost(x):
    """J(x) = x sin(x^2), on the host."""
    return x * np.sin(x ** 2)


def gradient(x, xp):
    """dJ/dx = sin(x^2) + 2 x^2 cos(x^2), on arrays of the namespace `xp`."""
    return xp.sin(x ** 2) + 2 * x ** 2 * xp.cos(x ** 2)


def descend(start, learning_rate, steps):
    """The iterates x_0 = start, x_1, ..., x_steps of SGD on J, as a NumPy array."""
    backend = pn.backend.get()
    optimizer = pn.optimizers.SGD(learning_rate=learning_rate)
    params = {"x": backend.asarray([start], dtype=backend.float_dtype())}
    state = optimizer.init(params)
    step = backend.jit(lambda p, s: optimizer.update(p, {"x": gradient(p["x"], backend.xp)}, s))
    xs = [start]
    for _ in range(steps):
        params, state = step(params, state)
        xs.append(float(backend.to_numpy(params["x"])[0]))
    return np.array(xs)


def one_dimension(args):
    print("--- SGD on J(x) = x sin(x^2)")
    print(f"{'rate':>6} {'start':>6}" + "".join(f" {f'x after {n}':>14}" for n in REPORTED_STEPS)
          + f" {'J(x) at the end':>16}")
    trajectories = {}
    for rate in RATES:
        for start in STARTS:
            xs = descend(start, rate, max(REPORTED_STEPS))
            trajectories[f"rate {rate}, start {start:g}"] = xs
            print(f"{rate:>6} {start:>6g}" + "".join(f" {xs[n]:>14.5f}" for n in REPORTED_STEPS)
                  + f" {cost(xs[-1]):>16.5f}")
    common.saved(plot.trajectories(cost, trajectories, args.out / "descent.png",
                                   title=f"SGD on J(x) = x sin(x²), {max(REPORTED_STEPS)} steps"))


def mlp():
    return pn.Sequential([pn.Input((784,)), Dense(40, activation="relu"), Dense(40, activation="relu"),
                          Dense(40, activation="relu"), Dense(10, activation="softmax")])


def compare_optimizers(args):
    name, data = common.load_images(args, "mnist", "fashion_mnist")
    (x_train, y_train), (x_test, y_test) = common.limit(args, *data)
    train = (common.pixels(x_train, flatten=True), y_train)
    test = (common.pixels(x_test, flatten=True), y_test)
    histories = {}
    for label, optimizer in OPTIMIZERS.items():
        print(f"--- {label}")
        pn.set_seed(args.seed)  # the same initial weights for every optimizer
        model = mlp()
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        histories[label] = common.fit(args, model, *train, validation_split=0.3)
        common.report(args, model, histories[label], *test, label=label)
    common.saved(plot.compare(histories, args.out / "val_accuracy.png", metric="val_accuracy",
                              title=f"784-40-40-40-10 MLP on {common.TITLES[name]}: "
                                    f"validation accuracy"))


def main():
    parser = common.parser("optimizers", __doc__, epochs=10, batch_size=50, images=True)
    args = common.start(parser)
    one_dimension(args)
    compare_optimizers(args)


if __name__ == "__main__":
    main()
