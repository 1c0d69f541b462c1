"""Handwritten 8x8 digits with a tanh network, three ways: plain, with L2, with dropout.

    python examples/digits.py             # up to 200 epochs, batch 32, early stopping (patience 10)
    python examples/digits.py --quick     # a smoke run of a few seconds

The Keras-course workflow on scikit-learn's digits (64 pixels scaled to [0, 1]): a Sequential
network 64 -> 64 tanh -> 32 tanh -> 10 softmax trained with Adam, 20% of the training set held
out for validation, EarlyStopping(patience=..., restore_best_weights=True); then the same network
with an L2 penalty on its kernels and with Dropout(0.2) after each hidden layer.

Prints one line per epoch, and for each variant the test loss and accuracy, the confusion matrix
and the classification report; plots the confusion matrices (confusion_<variant>.png) and the
validation accuracy of the three variants (val_accuracy.png) in --out. Needs scikit-learn (the
dataset is its bundled copy).
"""
import _common as common
import portanet as pn


def build(variant):
    """64 -> 64 tanh -> 32 tanh -> 10 softmax; `variant` "l2" (factor 1e-4) or "dropout" adds that regularization."""
    return common.tanh_classifier(variant, inputs=64, hidden=(64, 32), classes=10, l2=1e-4)


def main():
    parser = common.parser("digits", __doc__, epochs=200, batch_size=32, patience=10, verbose=0)
    args = common.start(parser)
    (x_train, y_train), (x_test, y_test) = pn.datasets.digits(seed=args.seed)
    train, test = common.limit(args, (x_train, y_train), (x_test, y_test))
    common.compare_variants(args, build, train, test, pn.datasets.MNIST_CLASSES,
                            "64-64-32-10 tanh network on the 8x8 digits", learning_rate=1e-3)


if __name__ == "__main__":
    main()
