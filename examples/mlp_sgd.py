"""Nielsen's first network: [784, 30, 10] sigmoid neurons, quadratic cost, mini-batch SGD.

    python examples/mlp_sgd.py                 # 10 epochs, batch 10, learning rate 3.0
    python examples/mlp_sgd.py --epochs 30     # as long as in the book
    python examples/mlp_sgd.py --quick         # a smoke run of a few seconds

The network of "Neural Networks and Deep Learning", chapter 1 (network.py), written with
portanet: sigmoid hidden and output layers, the quadratic cost as the mean squared error on
one-hot labels, plain SGD with learning rate 3.0 and mini-batches of 10; then the same network,
from the same initial weights, with momentum 0.5 (0.9 multiplies this large step by 10 in the
long run, too much: it trains worse). Keras' MSE averages over the 10 outputs, so its gradient
is 2/10 of the book's; the learning rate is the book's nevertheless.

Trains on MNIST when it is found (see portanet.datasets; --download fetches it), else on
Fashion-MNIST, and says which. Prints one line per epoch with the test accuracy as val_accuracy
(the book prints "Epoch 0: 9129 / 10000"), then each run's test loss and accuracy and seconds
per epoch; plots both test-accuracy curves (accuracy.png in --out).
"""
import _common as common
import portanet as pn
from portanet import plot
from portanet.layers import Dense

MOMENTA = {"SGD": 0.0, "SGD with momentum 0.5": 0.5}


def network():
    return pn.Sequential([pn.Input((784,)), Dense(30, activation="sigmoid"), Dense(10, activation="sigmoid")])


def main():
    parser = common.parser("mlp_sgd", __doc__, epochs=10, batch_size=10, images=True)
    args = common.start(parser)
    name, data = common.load_images(args, "mnist", "fashion_mnist")
    (x_train, y_train), (x_test, y_test) = common.limit(args, *data)
    train = (common.pixels(x_train, flatten=True), pn.datasets.to_categorical(y_train, 10))
    test = (common.pixels(x_test, flatten=True), pn.datasets.to_categorical(y_test, 10))
    histories = {}
    for label, momentum in MOMENTA.items():
        print(f"--- {label}")
        pn.set_seed(args.seed)  # the same initial weights for both runs
        model = network()
        model.compile(optimizer=pn.optimizers.SGD(learning_rate=3.0, momentum=momentum),
                      loss="mse", metrics=["accuracy"])
        histories[label] = common.fit(args, model, *train, validation_data=test)
        common.report(args, model, histories[label], *test, label=label)
    common.saved(plot.compare(histories, args.out / "accuracy.png", metric="val_accuracy",
                              title=f"[784, 30, 10] sigmoid network on {common.TITLES[name]}: "
                                    f"test accuracy"))


if __name__ == "__main__":
    main()
