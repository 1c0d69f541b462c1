"""ROC and precision-recall curves of a binary classifier (Wisconsin breast cancer).

    python examples/roc.py             # 50 epochs, batch 32
    python examples/roc.py --quick     # a smoke run of a few seconds

Standardised features (statistics of the training set), a network 30 -> 16 ReLU -> 1 sigmoid
trained with Adam on the binary cross-entropy, 20% of the training set held out for validation.
The predicted probabilities of the test set give the ROC curve (true against false positive rate
over every threshold) and the precision-recall curve, each summarised by the area under it
(portanet.reports.roc_curve, precision_recall_curve, auc). Class 1 (the positive class) is
"benign", scikit-learn's coding.

Prints one line per epoch, the test loss and accuracy, the seconds per epoch and both areas;
plots the curves (roc.png, pr.png) and the training curves (history.png) in --out. Needs
scikit-learn (the dataset is its bundled copy).
"""
import _common as common
import portanet as pn
from portanet import plot
from portanet.layers import Dense


def main():
    parser = common.parser("roc", __doc__, epochs=50, batch_size=32)
    args = common.start(parser)
    (x_train, y_train), (x_test, y_test) = pn.datasets.breast_cancer(seed=args.seed)
    x_train, x_test = pn.datasets.standardize(x_train, x_test)
    train, test = common.limit(args, (x_train, y_train), (x_test, y_test))
    model = pn.Sequential([pn.Input((30,)), Dense(16, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = common.fit(args, model, *train, validation_split=0.2)
    common.report(args, model, history, *test)
    scores = model.predict(test[0], batch_size=args.batch_size, verbose=0)[:, 0]
    fpr, tpr, _ = pn.reports.roc_curve(test[1], scores)
    precision, recall, _ = pn.reports.precision_recall_curve(test[1], scores)
    roc_auc, pr_auc = pn.reports.auc(fpr, tpr), pn.reports.auc(recall, precision)
    print(f"ROC AUC: {roc_auc:.4f}")
    print(f"precision-recall AUC: {pr_auc:.4f}")
    common.saved(plot.curves({f"test set (AUC = {roc_auc:.3f})": (fpr, tpr)}, args.out / "roc.png", kind="roc"))
    common.saved(plot.curves({f"test set (AUC = {pr_auc:.3f})": (recall, precision)}, args.out / "pr.png",
                             kind="pr"))
    common.saved(plot.history(history, args.out / "history.png", title="30-16-1 network on breast cancer"))


if __name__ == "__main__":
    main()
