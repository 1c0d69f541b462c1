"""Fisher's iris flowers with a small tanh network, three ways: plain, with L2, with dropout.

    python examples/iris.py             # up to 300 epochs, batch 16, early stopping (patience 20)
    python examples/iris.py --quick     # a smoke run of a few seconds

The Keras-course workflow: standardised features (statistics of the training set), a Sequential
network 4 -> 16 tanh -> 16 tanh -> 3 softmax trained with Adam, 20% of the training set held out
for validation, EarlyStopping(patience=..., restore_best_weights=True); then the same network
with an L2 penalty on its kernels and with Dropout(0.2) after each hidden layer.

Prints one line per epoch, and for each variant the test loss and accuracy, the confusion matrix
and the classification report; plots the confusion matrices (confusion_<variant>.png) and the
validation accuracy of the three variants (val_accuracy.png) in --out. Needs scikit-learn (the
dataset is its bundled copy).
"""
import _common as common
import portanet as pn

CLASS_NAMES = ("setosa", "versicolor", "virginica")


def build(variant):
    """4 -> 16 tanh -> 16 tanh -> 3 softmax; `variant` "l2" (factor 1e-3) or "dropout" adds that regularization."""
    return common.tanh_classifier(variant, inputs=4, hidden=(16, 16), classes=3, l2=1e-3)


def main():
    parser = common.parser("iris", __doc__, epochs=300, batch_size=16, patience=20, verbose=0)
    args = common.start(parser)
    (x_train, y_train), (x_test, y_test) = pn.datasets.iris(seed=args.seed)
    x_train, x_test = pn.datasets.standardize(x_train, x_test)
    train, test = common.limit(args, (x_train, y_train), (x_test, y_test))
    common.compare_variants(args, build, train, test, CLASS_NAMES, "4-16-16-3 tanh network on iris",
                            learning_rate=0.01)


if __name__ == "__main__":
    main()
