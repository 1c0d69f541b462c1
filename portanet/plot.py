"""Plots of training runs and evaluation results, written as PNG files (host-side, matplotlib).

    history = model.fit(x, y, validation_split=0.2, epochs=10)
    portanet.plot.history(history, "history.png")         # writes the PNG, returns its path
    figure = portanet.plot.confusion_matrix(cm, labels)   # no path: returns the matplotlib Figure

matplotlib is the optional `plot` extra (``pip install "portanet[plot]"``). It is imported only
when a function here is called, and figures are drawn with the non-interactive Agg canvas
without touching pyplot's global state, so plotting works on machines without a display.
Every function writes a PNG to `path` and returns the path, or returns the matplotlib Figure
when `path` is None (to show it in a notebook or save it yourself).
"""
import os

import numpy as np

from .errors import InvalidTypeError, invalid


def _figure(rows=1, cols=1, size=(6.4, 4.8)):
    """A new (figure, axes array) drawn on an Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('portanet.plot needs matplotlib, which is not installed. '
                          'Install it with: pip install "portanet[plot]"') from error
    figure = Figure(figsize=(size[0] * cols, size[1] * rows), constrained_layout=True)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, cols, squeeze=False).ravel()


def _check_path(path):
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise invalid("path", "a str or os.PathLike naming the PNG file to write", path, InvalidTypeError)


def _save(figure, path):
    if path is None:
        return figure
    figure.savefig(path, dpi=100)
    return path


def _logs(history):
    """{name: list of per-epoch values} from a History or its `.history` dict."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise invalid("history", "a History returned by fit() or its .history dict", history, InvalidTypeError)
    return logs


def _curve(ax, values, label, marker="o"):
    """Per-epoch `values` against the epoch number (with markers unless there are many)."""
    ax.plot(np.arange(1, len(values) + 1), values, marker=marker if len(values) <= 30 else None, label=label)


def _epoch_axis(ax, ylabel, title):
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()


def history(history, path=None, metrics=None, title=None):
    """Training and validation curves per epoch, one panel per metric (default: every training
    metric in the logs, e.g. loss and accuracy; `val_<name>` is drawn in the same panel)."""
    _check_path(path)
    logs = _logs(history)
    if isinstance(metrics, str):
        metrics = [metrics]
    if metrics is None:
        metrics = [k for k in logs if not k.startswith("val_") and k != "learning_rate"]
    missing = [m for m in metrics if m not in logs]
    if missing or not metrics:
        raise invalid("metrics", f"names among the logs {sorted(logs)}", metrics)
    figure, axes = _figure(1, len(metrics))
    for ax, name in zip(axes, metrics):
        _curve(ax, logs[name], "training")
        if f"val_{name}" in logs:
            _curve(ax, logs[f"val_{name}"], "validation", marker="s")
        _epoch_axis(ax, name, name)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def compare(histories, path=None, metric="val_accuracy", title=None):
    """One curve per run of `metric` against the epoch; `histories` maps a label to a History
    (or its `.history` dict), e.g. {"SGD": h1, "Adam": h2}."""
    _check_path(path)
    if not isinstance(histories, dict) or not histories:
        raise invalid("histories", "a non-empty dict {label: History}", histories, InvalidTypeError)
    runs = {label: _logs(history) for label, history in histories.items()}
    for label, logs in runs.items():
        if metric not in logs:
            raise invalid("metric", f"a name among the logs of run {label!r} {sorted(logs)}", metric)
    figure, (ax,) = _figure()
    for label, logs in runs.items():
        _curve(ax, logs[metric], str(label))
    _epoch_axis(ax, metric, title or metric)
    return _save(figure, path)


def confusion_matrix(cm, labels=None, path=None, title="confusion matrix"):
    """The confusion matrix `cm` (rows: true class, columns: predicted class) as an annotated
    heat map."""
    _check_path(path)
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise invalid("cm", "a square 2-D array (true x predicted)", f"an array of shape {cm.shape}")
    names = [str(i) for i in range(len(cm))] if labels is None else [str(n) for n in labels]
    if len(names) != len(cm):
        raise invalid("labels", f"{len(cm)} names, one per row of cm", f"{len(names)} names")
    side = max(4.8, 0.55 * len(cm) + 2.5)
    figure, (ax,) = _figure(size=(side * 1.15, side))
    image = ax.imshow(cm, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ticks = np.arange(len(cm))
    ax.set_xticks(ticks, names, rotation=45, ha="right")
    ax.set_yticks(ticks, names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    threshold = cm.max() / 2 if cm.size else 0
    spec = "d" if cm.dtype.kind in "iu" else ".2f"
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, format(cm[i, j], spec), ha="center", va="center",
                    color="white" if cm[i, j] > threshold else "black")
    return _save(figure, path)


_CURVES = {
    "roc": ("false positive rate", "true positive rate", "ROC curve"),
    "pr": ("recall", "precision", "precision-recall curve"),
}


def curves(curves, path=None, kind="roc", title=None):
    """ROC (``kind="roc"``: x = false positive rate, y = true positive rate, with the chance
    diagonal) or precision-recall (``kind="pr"``: x = recall, y = precision) curves; `curves`
    maps a label (e.g. "model (AUC = 0.98)") to an (x, y) pair of arrays."""
    _check_path(path)
    if kind not in _CURVES:
        raise invalid("kind", f"one of {sorted(_CURVES)}", kind)
    if not isinstance(curves, dict) or not curves:
        raise invalid("curves", "a non-empty dict {label: (x, y)}", curves, InvalidTypeError)
    xlabel, ylabel, default_title = _CURVES[kind]
    figure, (ax,) = _figure(size=(5.6, 5.2))
    if kind == "roc":
        ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=str(label), drawstyle="steps-post" if kind == "pr" else "default")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or default_title, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if kind == "roc" else "lower left")
    return _save(figure, path)


def trajectories(fn, trajectories, path=None, title=None, margin=0.25):
    """Gradient descent on a function of one variable. Left: the curve y = fn(x) and each run's
    iterates (x_k, fn(x_k)), from a circle (start) to a star (end); right: fn(x_k) against the
    step k (log scale), which shows how fast each run gets there. `fn` maps a NumPy array to an
    array of the same shape; `trajectories` maps a label to the sequence x_0, x_1, ..."""
    _check_path(path)
    if not callable(fn):
        raise invalid("fn", "a function of a NumPy array", fn, InvalidTypeError)
    if not isinstance(trajectories, dict) or not trajectories:
        raise invalid("trajectories", "a non-empty dict {label: sequence of x}", trajectories, InvalidTypeError)
    paths = {label: np.asarray(xs, dtype=np.float64).reshape(-1) for label, xs in trajectories.items()}
    if not all(xs.size for xs in paths.values()):
        raise invalid("trajectories", "at least one x per run", {k: v.size for k, v in paths.items()})
    points = np.concatenate(list(paths.values()))
    grid = np.linspace(points.min() - margin, points.max() + margin, 400)
    figure, (curve, progress) = _figure(1, 2, size=(6.4, 4.8))
    curve.plot(grid, fn(grid), color="black", linewidth=1)
    for label, xs in paths.items():
        (line,) = curve.plot(xs, fn(xs), ".-", markersize=3, linewidth=0.8, alpha=0.8)
        curve.plot(xs[:1], fn(xs[:1]), "o", color=line.get_color())
        curve.plot(xs[-1:], fn(xs[-1:]), "*", markersize=12, color=line.get_color())
        progress.plot(np.arange(1, len(xs) + 1), fn(xs), color=line.get_color(), label=str(label))
    curve.set(xlabel="x", ylabel="y", title="iterates on the curve")
    progress.set(xscale="log", xlabel="step k + 1", ylabel="value at x_k", title="value per step")
    for ax in (curve, progress):
        ax.grid(alpha=0.3)
    progress.legend(fontsize="small")
    figure.suptitle(title or "gradient descent")
    return _save(figure, path)
