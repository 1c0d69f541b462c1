"""LeNet-5 on Fashion-MNIST, the flagship example.

    python examples/lenet.py                          # NumPy: 10 epochs, batch 128, Adam 1e-3
    PORTANET_BACKEND=jax python examples/lenet.py     # the same on JAX (the train step is jitted)
    python examples/lenet.py --quick                  # a smoke run of a few seconds

The 28x28 images are padded to 1x32x32 (NCHW), the input size of LeCun et al. (1998):
Conv2D 6@5x5 -> MaxPool 2 -> Conv2D 16@5x5 -> MaxPool 2 -> Dense 120 -> Dense 84 -> Dense 10,
ReLU, softmax output, 10% of the training set held out for validation.

Prints the backend, one line (or a progress bar) per epoch, the test loss and accuracy and the
seconds per epoch; saves the trained model (lenet.pnet, reload it with portanet.load_model) and
the training curves (history.png) in --out. Where no Fashion-MNIST is found (see
portanet.datasets for where it is searched; --download fetches it) it says so and trains on
scikit-learn's 8x8 digits upscaled to 32x32 instead.
"""
import numpy as np

import _common as common
import portanet as pn
from portanet import plot
from portanet.layers import Conv2D, Dense, Flatten, MaxPool2D


def lenet5():
    return pn.Sequential([
        pn.Input((1, 32, 32)),
        Conv2D(6, 5, activation="relu"), MaxPool2D(2),
        Conv2D(16, 5, activation="relu"), MaxPool2D(2),
        Flatten(),
        Dense(120, activation="relu"),
        Dense(84, activation="relu"),
        Dense(10, activation="softmax"),
    ], name="lenet5")


def load(args):
    """(train, test, title): Fashion-MNIST (cut to --limit) padded to 32x32, else the digits upscaled."""
    name, data = common.load_images(args, "fashion_mnist", required=False)
    if data is None:
        print("Fashion-MNIST is not available: training on scikit-learn's 8x8 digits, upscaled to 32x32, "
              "instead.")
        (x_train, y_train), (x_test, y_test) = common.limit(args, *pn.datasets.digits(images=True))

        def upscale(x):  # each pixel becomes a 4x4 block
            return x.repeat(4, axis=2).repeat(4, axis=3)

        return (upscale(x_train), y_train), (upscale(x_test), y_test), "digits"

    def pad(x):  # (N, 28, 28) uint8 -> (N, 1, 32, 32) float32 in [0, 1]
        return np.pad(common.pixels(x), ((0, 0), (2, 2), (2, 2)))[:, None]

    (x_train, y_train), (x_test, y_test) = common.limit(args, *data)
    return (pad(x_train), y_train), (pad(x_test), y_test), common.TITLES[name]


def main():
    parser = common.parser("lenet", __doc__, epochs=10, batch_size=128, images=True)
    args = common.start(parser)
    train, test, title = load(args)
    model = lenet5()
    model.compile(optimizer=pn.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    history = common.fit(args, model, *train, validation_split=0.1)
    common.report(args, model, history, *test)
    model.save(args.out / "lenet.pnet")
    common.saved(args.out / "lenet.pnet")
    common.saved(plot.history(history, args.out / "history.png", title=f"LeNet-5 on {title}"))


if __name__ == "__main__":
    main()
