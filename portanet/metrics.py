"""Metrics computed on the device during training, plus host-side report helpers.

A metric turns one batch into a dict of summable statistics (`stats(y_true, y_pred, sample_weight=None)`, pure and
jit-safe); the training loop adds them up on the device and calls `result(totals)` once per progress update, so
metrics cost no host synchronisation per batch. Sample weights (one per example) weigh each example's contribution,
as Keras' weighted metrics."""
import math

from .backend import get as _backend
from .errors import invalid
from .registry import Registry, Serializable
from .reports import classification_report, confusion_matrix, precision_recall_curve, roc_curve


class Metric(Serializable):
    """Base class: `stats(y_true, y_pred, sample_weight=None)` -> summable statistics of a batch, `result(totals)`.

    Args:
        name: the name the metric is logged under. Default None: the class's name."""
    name = None

    def __init__(self, name=None):
        self.name = name or self.name   # the class's default name unless one is given

    def stats(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self, totals):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The metric on one batch."""
        return self.result(self.stats(y_true, y_pred, sample_weight))

    def get_config(self):
        return {"name": self.name}


REGISTRY = Registry("metric", Metric, argument="metrics")


def _weights(sample_weight, shape, dtype):
    """Sample weights (batch,) or (batch, steps) broadcast to `shape` (batch, ...); None without weights."""
    if sample_weight is None:
        return None
    xp = _backend().xp
    w = xp.astype(sample_weight, dtype)
    return xp.broadcast_to(xp.reshape(w, (*w.shape, *([1] * (len(shape) - w.ndim)))), shape)


def _mean_stats(values, dtype, sample_weight=None):
    """Summable (weighted) total and count of per-element values (batch, ...)."""
    xp = _backend().xp
    values = xp.astype(values, dtype)
    w = _weights(sample_weight, values.shape, dtype)
    if w is None:
        return {"total": xp.sum(values), "count": xp.asarray(math.prod(values.shape), dtype=dtype)}
    return {"total": xp.sum(values * w), "count": xp.sum(w)}


class _MeanMetric(Metric):
    def result(self, totals):
        return totals["total"] / totals["count"]


@REGISTRY.register("binary_accuracy")
class BinaryAccuracy(_MeanMetric):
    """Fraction of outputs on the right side of `threshold` (0.5 for probabilities, 0 for logits).

    Args:
        threshold: y_pred above it counts as 1 (y_true: above 0.5). Default 0.5.
        name: the name logged. Default None: "binary_accuracy"."""
    name = "binary_accuracy"

    def __init__(self, threshold=0.5, name=None):
        super().__init__(name)
        self.threshold = threshold

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}

    def stats(self, y_true, y_pred, sample_weight=None):
        y_true = _backend().xp.reshape(y_true, y_pred.shape)
        return _mean_stats((y_pred > self.threshold) == (y_true > 0.5), y_pred.dtype, sample_weight)


@REGISTRY.register("categorical_accuracy")
class CategoricalAccuracy(_MeanMetric):
    """Fraction of examples whose argmax matches the one-hot label's argmax.

    Args:
        name: the name logged. Default None: "categorical_accuracy"."""
    name = "categorical_accuracy"

    def stats(self, y_true, y_pred, sample_weight=None):
        xp = _backend().xp
        return _mean_stats(xp.argmax(y_pred, axis=-1) == xp.argmax(y_true, axis=-1), y_pred.dtype, sample_weight)


@REGISTRY.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(_MeanMetric):
    """Fraction of examples whose argmax equals the integer label.

    Args:
        name: the name logged. Default None: "sparse_categorical_accuracy"."""
    name = "sparse_categorical_accuracy"

    def stats(self, y_true, y_pred, sample_weight=None):
        xp = _backend().xp
        labels = xp.reshape(y_true, y_pred.shape[:-1])
        return _mean_stats(xp.astype(xp.argmax(y_pred, axis=-1), labels.dtype) == labels, y_pred.dtype, sample_weight)


def _true_scores(y_true, y_pred, sparse):
    xp = _backend().xp
    if sparse:
        classes = xp.arange(y_pred.shape[-1], dtype=y_true.dtype)
        y_true = xp.astype(xp.reshape(y_true, (*y_pred.shape[:-1], 1)) == classes, y_pred.dtype)
    return xp.sum(y_true * y_pred, axis=-1, keepdims=True)


@REGISTRY.register("top_k_categorical_accuracy", "top_k")
class TopKCategoricalAccuracy(_MeanMetric):
    """Fraction of examples whose true class is among the k highest scores (ties count for it).

    Args:
        k: how many of the highest scores count. Default 5.
        name: the name logged. Default None: "top_k_categorical_accuracy" ("sparse_..." with `sparse`).
        sparse: whether the labels are class indices rather than one-hot. Default False."""
    name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None, sparse=False):
        super().__init__(name or ("sparse_" + self.name if sparse else None))
        self.k, self.sparse = k, sparse

    def get_config(self):
        return {**super().get_config(), "k": self.k, "sparse": self.sparse}

    def stats(self, y_true, y_pred, sample_weight=None):
        xp = _backend().xp
        higher = xp.sum(xp.astype(y_pred > _true_scores(y_true, y_pred, self.sparse), y_pred.dtype), axis=-1)
        return _mean_stats(higher < self.k, y_pred.dtype, sample_weight)


class _ConfusionCounts(Metric):
    """True/false positives and false negatives; binary (threshold) or, for several classes,
    per class from the argmax and macro-averaged (scikit-learn's average="macro")."""

    def __init__(self, threshold=0.5, name=None, sparse=None):
        super().__init__(name)
        self.threshold, self.sparse = threshold, sparse

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "sparse": self.sparse}

    def stats(self, y_true, y_pred, sample_weight=None):
        xp = _backend().xp
        dtype = y_pred.dtype
        w = _weights(sample_weight, y_pred.shape[:-1] if y_pred.ndim > 1 else y_pred.shape, dtype)
        w = None if w is None else xp.reshape(w, (-1, 1))
        if y_pred.shape[-1] == 1 or y_pred.ndim == 1:
            pred = xp.reshape(y_pred > self.threshold, (-1, 1))
            true = xp.reshape(y_true > 0.5, (-1, 1))
        else:
            classes = xp.arange(y_pred.shape[-1])
            pred = xp.reshape(xp.argmax(y_pred, axis=-1), (-1, 1)) == classes
            if self.sparse or y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
                true = xp.reshape(xp.astype(y_true, classes.dtype), (-1, 1)) == classes
            else:
                true = xp.reshape(xp.argmax(y_true, axis=-1), (-1, 1)) == classes

        def count(mask):
            return xp.sum(xp.astype(mask, dtype) if w is None else xp.astype(mask, dtype) * w, axis=0)

        return {"tp": count(pred & true), "fp": count(pred & ~true), "fn": count(~pred & true)}

    @staticmethod
    def _ratio(a, b):
        xp = _backend().xp
        return xp.where(b > 0, a / xp.where(b > 0, b, 1.0), 0.0)


@REGISTRY.register("precision")
class Precision(_ConfusionCounts):
    """Precision tp / (tp + fp) (0 without predicted positives); several classes: per class (argmax), macro-averaged.

    Args:
        threshold: the decision threshold of binary (one-column) outputs. Default 0.5.
        name: the name logged. Default None: "precision".
        sparse: labels are class indices (True) or one-hot (False); None (the default): by their shape."""
    name = "precision"

    def result(self, t):
        return _backend().xp.mean(self._ratio(t["tp"], t["tp"] + t["fp"]))


@REGISTRY.register("recall")
class Recall(_ConfusionCounts):
    """Recall tp / (tp + fn) (0 without positive labels); several classes: macro-averaged.

    Args:
        threshold, name, sparse: as Precision's; name defaults to "recall"."""
    name = "recall"

    def result(self, t):
        return _backend().xp.mean(self._ratio(t["tp"], t["tp"] + t["fn"]))


@REGISTRY.register("f1_score")
class F1Score(_ConfusionCounts):
    """F1 score 2 tp / (2 tp + fp + fn); several classes: macro-averaged (Keras' average="macro").

    Args:
        threshold, name, sparse: as Precision's; name defaults to "f1_score"."""
    name = "f1_score"

    def result(self, t):
        return _backend().xp.mean(self._ratio(2.0 * t["tp"], 2.0 * t["tp"] + t["fp"] + t["fn"]))


@REGISTRY.register("auc")
class AUC(Metric):
    """ROC AUC of a binary classifier, from histograms of scores over `num_thresholds` buckets
    (Keras' approximation): trapezoids under the (FPR, TPR) points of the bucket edges.

    Args:
        num_thresholds: the number of equal buckets of [0, 1]. Default 200.
        name: the name logged. Default None: "auc".
        from_logits: whether y_pred holds logits (a sigmoid is applied first). Default False."""
    name = "auc"

    def __init__(self, num_thresholds=200, name=None, from_logits=False):
        super().__init__(name)
        self.num_thresholds, self.from_logits = num_thresholds, from_logits

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "from_logits": self.from_logits}

    def stats(self, y_true, y_pred, sample_weight=None):
        xp = _backend().xp
        score = xp.reshape(y_pred, (-1, 1))
        if self.from_logits:
            score = 1.0 / (1.0 + xp.exp(-score))
        positive = xp.astype(xp.reshape(y_true, (-1, 1)) > 0.5, y_pred.dtype)
        bucket = xp.clip(xp.astype(xp.floor(score * self.num_thresholds), xp.int32), 0, self.num_thresholds - 1)
        onehot = xp.astype(bucket == xp.arange(self.num_thresholds, dtype=xp.int32), y_pred.dtype)
        if sample_weight is not None:
            onehot = onehot * xp.reshape(_weights(sample_weight, y_pred.shape, y_pred.dtype), (-1, 1))
        return {"pos": xp.sum(onehot * positive, axis=0), "neg": xp.sum(onehot * (1.0 - positive), axis=0)}

    def result(self, t):
        xp = _backend().xp
        # counts of examples scoring at or above each bucket edge, from the top bucket down
        tp = xp.cumulative_sum(xp.flip(t["pos"]))
        fp = xp.cumulative_sum(xp.flip(t["neg"]))
        zero = xp.zeros((1,), dtype=tp.dtype)
        tpr = xp.concat([zero, tp]) / xp.maximum(tp[-1], 1.0)
        fpr = xp.concat([zero, fp]) / xp.maximum(fp[-1], 1.0)
        return xp.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0)


@REGISTRY.register("sparse_top_k_categorical_accuracy")
class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """TopKCategoricalAccuracy with integer class labels.

    Args:
        k, name: as TopKCategoricalAccuracy's (k 5; name "sparse_top_k_categorical_accuracy").
        sparse: ignored (always True). Default True."""

    def __init__(self, k=5, name=None, sparse=True):
        super().__init__(k, name, sparse=True)


class _Regression(_MeanMetric):
    """The (weighted) mean over examples of the mean over the last axis of f(y_pred - y_true)."""

    def stats(self, y_true, y_pred, sample_weight=None):
        xp = _backend().xp
        d = y_pred - xp.reshape(xp.astype(y_true, y_pred.dtype), y_pred.shape)
        return _mean_stats(xp.mean(self.f(d), axis=-1), y_pred.dtype, sample_weight)


@REGISTRY.register("mean_squared_error", "mse")
class MeanSquaredError(_Regression):
    """Mean of (y_pred - y_true)^2 over the last axis, then over examples.

    Args:
        name: the name logged. Default None: "mean_squared_error"."""
    name = "mean_squared_error"

    def f(self, d):
        return d * d


@REGISTRY.register("mean_absolute_error", "mae")
class MeanAbsoluteError(_Regression):
    """Mean of |y_pred - y_true| over the last axis, then over examples.

    Args:
        name: the name logged. Default None: "mean_absolute_error"."""
    name = "mean_absolute_error"

    def f(self, d):
        return _backend().xp.abs(d)


@REGISTRY.register("mean_absolute_percentage_error", "mape")
class MeanAbsolutePercentageError(_MeanMetric):
    """100 |y_true - y_pred| / max(|y_true|, 1e-7), averaged over the last axis, then over examples.

    Args:
        name: the name logged. Default None: "mean_absolute_percentage_error"."""
    name = "mean_absolute_percentage_error"

    def stats(self, y_true, y_pred, sample_weight=None):
        xp = _backend().xp
        y = xp.reshape(xp.astype(y_true, y_pred.dtype), y_pred.shape)
        ratio = xp.abs(y - y_pred) / xp.maximum(xp.abs(y), 1e-7)
        return _mean_stats(100.0 * xp.mean(ratio, axis=-1), y_pred.dtype, sample_weight)


@REGISTRY.register("root_mean_squared_error", "rmse")
class RootMeanSquaredError(MeanSquaredError):
    """The square root of the (weighted) mean squared error over the whole data.

    Args:
        name: the name logged. Default None: "root_mean_squared_error"."""
    name = "root_mean_squared_error"

    def result(self, totals):
        return _backend().xp.sqrt(totals["total"] / totals["count"])


@REGISTRY.register("r2_score")
class R2Score(Metric):
    """Coefficient of determination 1 - SS_res / SS_tot per output column. Labels (batch, columns).

    Args:
        class_aggregation: "uniform_average" (the default: the mean) or "variance_weighted_average" (SS_tot-weighted).
        num_regressors: p; with p > 0, adjusted: 1 - (1 - R2) (n - 1) / (n - p - 1). Default 0.
        name: the name logged. Default None: "r2_score"."""
    name = "r2_score"

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name=None):
        super().__init__(name)
        if class_aggregation not in ("uniform_average", "variance_weighted_average"):
            raise invalid("class_aggregation", "'uniform_average' or 'variance_weighted_average'", class_aggregation)
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}

    def stats(self, y_true, y_pred, sample_weight=None):
        xp = _backend().xp
        p = xp.reshape(y_pred, (y_pred.shape[0], -1))
        y = xp.reshape(xp.astype(y_true, p.dtype), p.shape)
        w = _weights(sample_weight, p.shape, p.dtype)
        w = xp.ones_like(p) if w is None else w
        return {"w": xp.sum(w, axis=0), "wy": xp.sum(w * y, axis=0), "wy2": xp.sum(w * y * y, axis=0),
                "res": xp.sum(w * (y - p) ** 2, axis=0), "n": xp.asarray(float(p.shape[0]), dtype=p.dtype)}

    def result(self, t):
        xp = _backend().xp
        total = t["wy2"] - t["wy"] * t["wy"] / t["w"]
        r2 = xp.where(total > 0, 1.0 - t["res"] / xp.where(total > 0, total, 1.0), 0.0)
        if self.class_aggregation == "uniform_average":
            score = xp.mean(r2)
        else:
            score = xp.sum(r2 * total) / xp.sum(total)
        if self.num_regressors:
            score = 1.0 - (1.0 - score) * (t["n"] - 1.0) / (t["n"] - self.num_regressors - 1.0)
        return score


def get(identifier, loss=None):
    """A Metric from a name (logged under that name), a serialized config or a Metric.

    Returns:
        A `Metric`. "accuracy" (or "acc") picks binary, categorical or sparse accuracy from `loss`, as Keras does
        (binary at threshold 0 when the loss takes logits); the confusion-count metrics and AUC read their labels
        the loss's way."""
    label_kind = getattr(loss, "label_kind", "dense")
    from_logits = getattr(loss, "from_logits", False)
    if identifier in ("accuracy", "acc"):
        if label_kind == "sparse":
            return SparseCategoricalAccuracy(name=identifier)
        if label_kind == "binary":
            return BinaryAccuracy(threshold=0.0 if from_logits else 0.5, name=identifier)
        return CategoricalAccuracy(name=identifier)
    if isinstance(identifier, str) and identifier not in REGISTRY.names:
        raise invalid("metrics", f"names from {sorted(['accuracy', *REGISTRY.names])}", identifier)
    metric = REGISTRY.get(identifier)
    if isinstance(identifier, str):
        metric.name = identifier  # logged as written ("mse" stays mse), as Keras
    if isinstance(identifier, str) and isinstance(metric, _ConfusionCounts):
        metric.sparse = label_kind == "sparse"
        metric.threshold = 0.0 if from_logits else 0.5
    if isinstance(identifier, str) and isinstance(metric, AUC):
        metric.from_logits = from_logits
    return metric


serialize, deserialize = REGISTRY.serialize, REGISTRY.deserialize


binary_accuracy, categorical_accuracy = BinaryAccuracy(), CategoricalAccuracy()
sparse_categorical_accuracy, top_k_categorical_accuracy = SparseCategoricalAccuracy(), TopKCategoricalAccuracy()
precision, recall, f1_score, auc = Precision(), Recall(), F1Score(), AUC()
mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()

__all__ = ["Metric", "get", "serialize", "deserialize", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
           "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "Precision", "Recall", "F1Score", "AUC",
           "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "RootMeanSquaredError", "R2Score",
           "confusion_matrix",
           "classification_report", "roc_curve", "precision_recall_curve"]
