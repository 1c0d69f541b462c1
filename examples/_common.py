"""What every example shares: its command line, data helpers and the printed report.

Not an example itself. Every example accepts

    --epochs N  --batch-size N  --limit N  --quick  --out DIR  --seed N  --backend NAME  --verbose 0|1|2

and the examples on image datasets also ``--data-dir DIR`` and ``--download``. Run any example
with ``--help`` for its defaults.
"""
import argparse
import importlib.util
import pathlib
import statistics
import sys

import numpy as np

import portanet as pn
from portanet import plot

#: --quick trains (and tests) on at most this many examples, for one epoch.
QUICK_EXAMPLES = 512
#: A progress bar in a terminal; one line per epoch when the output goes to a file or a pipe.
VERBOSE = 1 if sys.stdout.isatty() else 2

#: The variants `compare_variants` trains: the plain network, with an L2 penalty, with dropout.
VARIANTS = ("plain", "l2", "dropout")

TITLES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}
CLASS_NAMES = {"fashion_mnist": pn.datasets.FASHION_MNIST_CLASSES, "mnist": pn.datasets.MNIST_CLASSES,
               "cifar10": pn.datasets.CIFAR10_CLASSES}


def integer(minimum):
    """An argparse type: an int >= `minimum` (0 or 1)."""
    expected = "a positive integer" if minimum == 1 else "a non-negative integer"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def parser(name, doc, epochs, batch_size, images=False, patience=None, verbose=VERBOSE):
    """The argument parser of example `name` (its --help shows the module docstring `doc`); with
    `images`, the dataset options; with `patience`, --patience (of early stopping) too; `verbose`
    the default of --verbose."""
    result = argparse.ArgumentParser(prog=f"{name}.py", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--backend", choices=sorted(pn.backend.KNOWN),
                        help="the array backend (default: $PORTANET_BACKEND, else numpy)")
    result.add_argument("--verbose", type=int, choices=(0, 1, 2), default=verbose,
                        help=f"0: silent, 1: a progress bar, 2: a line per epoch (default {verbose})")
    result.add_argument("--epochs", type=integer(1), default=epochs, help=f"training epochs (default {epochs})")
    result.add_argument("--batch-size", type=integer(1), default=batch_size,
                        help=f"examples per training step (default {batch_size})")
    result.add_argument("--limit", type=integer(1), metavar="N", help="train on the first N examples only")
    result.add_argument("--quick", action="store_true",
                        help=f"smoke run: 1 epoch on at most {QUICK_EXAMPLES} training and test examples")
    result.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out") / name,
                        help=f"folder for plots and saved models (default out/{name})")
    result.add_argument("--seed", type=integer(0), default=0,
                        help="seed of the weights, dropout and shuffling (default 0)")
    if images:
        result.add_argument("--data-dir", type=pathlib.Path,
                            help="folder holding the dataset (or its fashion-mnist/, mnist/, cifar-10/ "
                                 "subfolder); default: portanet.datasets' search ($PORTANET_DATA, system "
                                 "packages, the user cache)")
        result.add_argument("--download", action="store_true",
                            help="download a missing dataset from its official mirrors")
    if patience is not None:
        result.add_argument("--patience", type=integer(0), default=patience,
                            help=f"epochs without a lower val_loss before training stops (default {patience})")
    return result


def start(parser, args=None):
    """Parse the command line (unless `args` are given), apply --quick, create --out, seed portanet
    and print the backend."""
    args = parser.parse_args() if args is None else args
    if importlib.util.find_spec("matplotlib") is None:
        sys.exit('The examples draw plots with matplotlib, which is not installed. '
                 'Install it with: pip install "portanet[plot]"')
    if args.quick:
        args.epochs, args.limit = 1, min(args.limit or QUICK_EXAMPLES, QUICK_EXAMPLES)
    args.out.mkdir(parents=True, exist_ok=True)
    backend = pn.backend.set(args.backend) if args.backend else pn.backend.get()
    pn.set_seed(args.seed)
    print(f"backend: {backend.name} (device: {backend.device})")
    return args


def load_images(args, *loaders, required=True):
    """The first dataset found of `loaders` (names of portanet.datasets functions, e.g.
    "mnist", "fashion_mnist"): (name, ((x_train, y_train), (x_test, y_test))). Says in one line
    each which it did not find and which it falls back to. When none is found (or downloaded,
    with --download) it exits, or returns (None, None) if not `required`."""
    missing = []
    for name in loaders:
        try:
            data = getattr(pn.datasets, name)(path=args.data_dir, download=args.download)
        except pn.datasets.DatasetNotFoundError:
            where = f"in {args.data_dir}" if args.data_dir else "in portanet.datasets' usual places"
            print(f"{TITLES[name]} not found {where} (--data-dir DIR: a folder holding it; --download: fetch it)")
            missing.append(name)
            continue
        if missing:
            print(f"falling back to {TITLES[name]} instead of {', '.join(TITLES[m] for m in missing)}")
        print(f"dataset: {TITLES[name]}")
        return name, data
    if required:
        sys.exit(f"None of {', '.join(TITLES[name] for name in loaders)} was found: pass --data-dir DIR or "
                 f"--download (see the lines above).")
    return None, None


def pixels(x, flatten=False):
    """uint8 images -> float32 in [0, 1]; flattened to (N, pixels) with `flatten`."""
    x = x.astype(np.float32) / np.float32(255)
    return x.reshape(len(x), -1) if flatten else x


def limit(args, train, test):
    """(x, y) pairs cut to --limit training examples (--quick: the test set too); prints the sizes."""
    if args.limit is not None:
        train = tuple(a[:args.limit] for a in train)
    if args.quick:
        test = tuple(a[:QUICK_EXAMPLES] for a in test)
    print(f"training examples: {len(train[0])}, test examples: {len(test[0])}")
    return train, test


def fit(args, model, x, y, callbacks=(), **options):
    """model.fit with the command line's epochs and batch size, printing one line per epoch; the
    History it returns also holds the seconds of each epoch (`history.seconds`)."""
    timer = pn.callbacks.EpochTimer()
    history = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose,
                        callbacks=[*callbacks, timer], **options)
    history.seconds = timer.seconds
    return history


def report(args, model, history, x_test, y_test, label=None):
    """Print the test loss and metrics and the seconds per epoch."""
    # evaluated in batches of the training's size: on JAX the compiled step of validation is reused
    results = model.evaluate(x_test, y_test, batch_size=args.batch_size, verbose=0, return_dict=True)
    prefix = f"{label}: " if label else ""
    print(prefix + ", ".join(f"test {name}: {value:.4f}" for name, value in results.items()))
    seconds = history.seconds
    if len(seconds) > 1:  # the first epoch includes compilation (JAX) and warm-up
        later = "epoch 2" if len(seconds) == 2 else f"epochs 2-{len(seconds)}"
        print(f"{prefix}seconds per epoch: {statistics.mean(seconds[1:]):.3g} "
              f"({later}; the first took {seconds[0]:.3g})")
    else:
        print(f"{prefix}seconds per epoch: {seconds[0]:.3g}")


def classification(args, model, x_test, y_test, class_names, path, title):
    """Print the confusion matrix and classification report of a classifier on the test set and
    plot the matrix into `path`."""
    predicted = model.predict(x_test, batch_size=args.batch_size, verbose=0).argmax(axis=1)
    cm = pn.reports.confusion_matrix(y_test, predicted, num_classes=len(class_names))
    print("confusion matrix (rows: true class, columns: predicted class):")
    print(cm)
    print(pn.reports.classification_report(y_test, predicted, target_names=class_names))
    saved(plot.confusion_matrix(cm, class_names, path, title=title))


def saved(path):
    """Say where a file was written."""
    print(f"saved {path}")


def tanh_classifier(variant, inputs, hidden, classes, l2):
    """inputs -> tanh layers of `hidden` units -> classes softmax, as in the Keras course; the
    variant "l2" puts an L2 penalty of factor `l2` on every kernel, "dropout" adds Dropout(0.2)
    after each hidden layer, "plain" neither."""
    regularizer = pn.regularizers.l2(l2) if variant == "l2" else None
    layers = [pn.Input((inputs,))]
    for units in hidden:
        layers.append(pn.layers.Dense(units, activation="tanh", kernel_regularizer=regularizer))
        if variant == "dropout":
            layers.append(pn.layers.Dropout(0.2))
    layers.append(pn.layers.Dense(classes, activation="softmax", kernel_regularizer=regularizer))
    return pn.Sequential(layers)


def compare_variants(args, build, train, test, class_names, title, learning_rate):
    """Train `build(variant)` for each of VARIANTS (the same network plain, with an L2 penalty on
    its kernels, with dropout) from the same initial weights, with Adam at `learning_rate`, 20% of
    the training set held out for validation and early stopping (--patience) that restores the
    best weights. Prints each variant's test metrics, confusion matrix and classification report;
    plots the confusion matrices (confusion_<variant>.png) and the validation accuracy of all
    variants (val_accuracy.png)."""
    histories = {}
    for variant in VARIANTS:
        print(f"--- {variant}")
        pn.set_seed(args.seed)
        model = build(variant)
        model.compile(optimizer=pn.optimizers.Adam(learning_rate=learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        stop = pn.callbacks.EarlyStopping(patience=args.patience, restore_best_weights=True)
        histories[variant] = fit(args, model, *train, validation_split=0.2, callbacks=[stop])
        stopped = f"stopped early after epoch {stop.stopped_epoch + 1}" if stop.stopped_epoch else "ran every epoch"
        print(f"{variant}: {stopped}, restored the weights of epoch {stop.best_epoch + 1} (lowest val_loss)")
        report(args, model, histories[variant], *test, label=variant)
        classification(args, model, *test, class_names, args.out / f"confusion_{variant}.png",
                       title=f"{title}, {variant}: test set")
    saved(plot.compare(histories, args.out / "val_accuracy.png", metric="val_accuracy",
                       title=f"{title}: validation accuracy"))
