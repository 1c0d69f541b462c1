"""A one-hidden-layer dense network on CIFAR-10: MSE loss, L2 weight decay, mean subtraction.

    python examples/cifar_dense.py             # 20 epochs, batch 64, SGD 0.01 with momentum 0.9
    python examples/cifar_dense.py --quick     # a smoke run of a few seconds

The classic pre-deep-learning baseline: pixels scaled to [0, 1], the mean training image
subtracted from every image, 3072 inputs -> 100 sigmoid units -> 10 linear outputs fitted to
one-hot labels with the mean squared error, plus an L2 penalty on both kernels; 10% of the
training set held out for validation.

Uses CIFAR-10 when portanet.datasets.cifar10() finds it (--download fetches it); else says so
and uses Fashion-MNIST (784 inputs). Prints one line per epoch, the test loss and accuracy and
the seconds per epoch; plots the training curves (history.png in --out).
"""
import _common as common
import portanet as pn
from portanet import plot
from portanet.layers import Dense

L2 = 1e-4


def network(inputs):
    return pn.Sequential([
        pn.Input((inputs,)),
        Dense(100, activation="sigmoid", kernel_regularizer=pn.regularizers.l2(L2)),
        Dense(10, kernel_regularizer=pn.regularizers.l2(L2)),
    ])


def main():
    parser = common.parser("cifar_dense", __doc__, epochs=20, batch_size=64, images=True)
    args = common.start(parser)
    name, data = common.load_images(args, "cifar10", "fashion_mnist")
    (x_train, y_train), (x_test, y_test) = common.limit(args, *data)
    x_train, x_test = pn.datasets.mean_subtract(common.pixels(x_train, flatten=True),
                                                common.pixels(x_test, flatten=True))
    y_train, y_test = pn.datasets.to_categorical(y_train, 10), pn.datasets.to_categorical(y_test, 10)
    model = network(x_train.shape[1])
    model.compile(optimizer=pn.optimizers.SGD(learning_rate=0.01, momentum=0.9), loss="mse", metrics=["accuracy"])
    history = common.fit(args, model, x_train, y_train, validation_split=0.1)
    common.report(args, model, history, x_test, y_test)
    common.saved(plot.history(history, args.out / "history.png",
                              title=f"{x_train.shape[1]}-100-10 network on {common.TITLES[name]}"))


if __name__ == "__main__":
    main()
