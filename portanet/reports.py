"""Host-side evaluation reports on NumPy arrays (scikit-learn's definitions, no dependency)."""
import numpy as np

from .errors import invalid


def _labels(y, name):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot or scores: take the argmax
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise invalid(name, "integer class labels (or one-hot rows)", y[:5])
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """C[i, j] = number of examples of true class i predicted as class j.

    `y_pred` may be class indices, or scores/probabilities (batch, classes) of which the argmax is taken.
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise invalid("y_pred", f"as many labels as y_true ({t.size})", p.size)
    needed = int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    if num_classes is not None and not needed <= num_classes:
        raise invalid("num_classes", f"more than the largest label ({needed - 1})", num_classes)
    if t.min(initial=0) < 0 or p.min(initial=0) < 0:
        raise invalid("y_true", "non-negative class labels", int(min(t.min(initial=0), p.min(initial=0))))
    n = int(num_classes or needed)
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def classification_report(y_true, y_pred, target_names=None, digits=2):
    """A text table of precision, recall, F1 and support per class, with macro and weighted averages
    (one row per `target_names` entry, also for classes absent from both y_true and y_pred)."""
    cm = confusion_matrix(y_true, y_pred, None if target_names is None else len(target_names))
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / cm.sum(axis=0))
        recall = np.nan_to_num(tp / support)
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    names = list(target_names) if target_names is not None else [str(i) for i in range(len(cm))]
    width = max(12, *(len(n) for n in names))
    lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}", ""]
    for i, name in enumerate(names):
        lines.append(f"{name:>{width}} {precision[i]:>9.{digits}f} {recall[i]:>9.{digits}f} "
                     f"{f1[i]:>9.{digits}f} {support[i]:>9d}")
    total = support.sum()
    lines += ["", f"{'accuracy':>{width}} {'':>9} {'':>9} {tp.sum() / max(total, 1):>9.{digits}f} {total:>9d}"]
    for label, weights in (("macro avg", np.ones_like(support)), ("weighted avg", support)):
        w = weights / max(weights.sum(), 1)
        lines.append(f"{label:>{width}} {(precision * w).sum():>9.{digits}f} {(recall * w).sum():>9.{digits}f} "
                     f"{(f1 * w).sum():>9.{digits}f} {total:>9d}")
    return "\n".join(lines)


def _binary_curve(y_true, scores):
    y = np.asarray(y_true).reshape(-1) > 0.5
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise invalid("y_score", f"one score per label ({y.size})", s.size)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    return fps, tps, s[last]


def roc_curve(y_true, y_score):
    """(fpr, tpr, thresholds) of a binary classifier, as sklearn.metrics.roc_curve(drop_intermediate=False)."""
    fps, tps, thresholds = _binary_curve(y_true, y_score)
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1), thresholds


def precision_recall_curve(y_true, y_score):
    """(precision, recall, thresholds), as sklearn.metrics.precision_recall_curve: recall decreasing,
    ending at precision 1, recall 0."""
    fps, tps, thresholds = _binary_curve(y_true, y_score)
    precision = tps / np.maximum(tps + fps, 1)
    recall = tps / max(tps[-1], 1)
    # keep thresholds up to the first full recall, reversed so recall decreases
    stop = int(np.searchsorted(tps, tps[-1])) + 1
    return (np.r_[precision[:stop][::-1], 1.0], np.r_[recall[:stop][::-1], 0.0], thresholds[:stop][::-1])


def auc(x, y):
    """Area under a curve by the trapezoid rule (x monotonic)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(abs(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2)))
