"""portanet.plot: every function writes a PNG; bad arguments and a missing matplotlib are clear."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from portanet import callbacks, plot
from portanet.errors import InvalidArgumentError, InvalidTypeError

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib not installed")

PNG = b"\x89PNG\r\n\x1a\n"
LOGS = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8], "val_loss": [1.1, 0.7, 0.6],
        "val_accuracy": [0.45, 0.65, 0.7], "seconds": [0.1, 0.1, 0.1]}


def history(logs=LOGS):
    """A History as fit() returns it."""
    result = callbacks.History()
    result.on_train_begin()
    for epoch in range(len(logs["loss"])):
        result.on_epoch_end(epoch, {k: v[epoch] for k, v in logs.items()})
    return result


def assert_png(path, returned):
    assert returned == path
    assert path.read_bytes()[:8] == PNG


@needs_matplotlib
@pytest.mark.parametrize("source", [history(), LOGS], ids=["History", "dict"])
def test_plot_history(source, tmp_path):
    path = tmp_path / "history.png"
    assert_png(path, plot.history(source, path, title="run"))


@needs_matplotlib
def test_plot_history_of_chosen_metrics(tmp_path):
    assert_png(tmp_path / "a.png", plot.history(LOGS, tmp_path / "a.png", metrics=["accuracy"]))
    path = str(tmp_path / "b.png")  # a str path, and one metric given as a str
    assert plot.history(LOGS, path, metrics="loss") == path
    assert (tmp_path / "b.png").read_bytes()[:8] == PNG


@needs_matplotlib
def test_without_a_path_the_figure_is_returned():
    from matplotlib.figure import Figure
    figure = plot.confusion_matrix(np.eye(2, dtype=int), ["cat", "dog"])
    assert isinstance(figure, Figure) and [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["cat", "dog"]
    assert isinstance(plot.history(LOGS), Figure)


@needs_matplotlib
def test_compare_histories(tmp_path):
    path = tmp_path / "compare.png"
    assert_png(path, plot.compare({"SGD": history(), "Adam": LOGS}, path, metric="val_loss"))


@needs_matplotlib
def test_plot_confusion_matrix(tmp_path):
    cm = np.array([[5, 1, 0], [0, 6, 2], [1, 0, 7]])
    assert_png(tmp_path / "counts.png", plot.confusion_matrix(cm, ["a", "b", "c"], tmp_path / "counts.png"))
    rates = cm / cm.sum(axis=1, keepdims=True)
    assert_png(tmp_path / "rates.png", plot.confusion_matrix(rates, path=tmp_path / "rates.png"))


@needs_matplotlib
@pytest.mark.parametrize("kind", ["roc", "pr"])
def test_plot_curves(kind, tmp_path):
    x, y = np.array([0.0, 0.2, 1.0]), np.array([0.0, 0.9, 1.0])
    path = tmp_path / f"{kind}.png"
    assert_png(path, plot.curves({"model (AUC = 0.9)": (x, y), "other": (x, x)}, path, kind=kind))


@needs_matplotlib
def test_plot_trajectories(tmp_path):
    def cost(x):
        return x * np.sin(x ** 2)

    path = tmp_path / "descent.png"
    runs = {"rate 0.01": np.linspace(1.5, 2.19, 50), "rate 0.001": [-2.0, -1.9, -1.8]}
    assert_png(path, plot.trajectories(cost, runs, path, title="descent"))


@pytest.mark.parametrize("call, error, text", [
    (lambda p: plot.history(LOGS, p, metrics=["auc"]), InvalidArgumentError, "names among the logs"),
    (lambda p: plot.history([1, 2], p), InvalidTypeError, "History returned by fit()"),
    (lambda p: plot.history(LOGS, 3), InvalidTypeError, "`path`"),
    (lambda p: plot.compare({}, p), InvalidTypeError, "non-empty dict"),
    (lambda p: plot.compare({"a": LOGS}, p, metric="auc"), InvalidArgumentError, "run 'a'"),
    (lambda p: plot.confusion_matrix(np.ones((2, 3)), path=p), InvalidArgumentError, "square"),
    (lambda p: plot.confusion_matrix(np.eye(3), ["a", "b"], p), InvalidArgumentError, "3 names"),
    (lambda p: plot.curves({"m": ([0, 1], [0, 1])}, p, kind="det"), InvalidArgumentError, "['pr', 'roc']"),
    (lambda p: plot.trajectories(np.sin, {"empty": []}, p), InvalidArgumentError, "at least one x"),
    (lambda p: plot.trajectories("sin", {"a": [1.0]}, p), InvalidTypeError, "`fn`"),
])
def test_bad_arguments(call, error, text, tmp_path):
    with pytest.raises(error) as info:
        call(tmp_path / "bad.png")
    assert text in str(info.value)
    assert not (tmp_path / "bad.png").exists()


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` fail
    with pytest.raises(ImportError, match=r'pip install "portanet\[plot\]"'):
        plot.history(LOGS, tmp_path / "history.png")
    assert not (tmp_path / "history.png").exists()


def test_importing_portanet_plot_does_not_import_matplotlib():
    code = "import sys, portanet.plot; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
