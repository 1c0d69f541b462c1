"""The layout rule: only backends/ imports a concrete array library; host-side modules may use numpy."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARRAY_LIBRARIES = {"numpy", "jax", "jaxlib", "cupy", "cupyx", "array_api_strict", "torch"}
# Host-side modules: I/O, dataset loading, data batching, host reports, plots. numpy only.
HOST_MODULES = {"io.py", "datasets.py", "data.py", "reports.py", "plot.py", "__main__.py"}


def imported_roots(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_core_imports_no_array_library():
    offenders = {}
    for path in sorted((ROOT / "portanet").rglob("*.py")):
        allowed = {"numpy"} if path.name in HOST_MODULES else set()
        bad = (set(imported_roots(path)) & ARRAY_LIBRARIES) - allowed
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"array libraries imported outside backends/: {offenders}"


def test_the_check_sees_an_offender(tmp_path):
    bad = tmp_path / "layer.py"
    bad.write_text("import jax.numpy as jnp\nfrom numpy import zeros\n")
    assert set(imported_roots(bad)) == {"jax", "numpy"}


def test_backend_modules_exist():
    names = {p.stem for p in (ROOT / "backends").glob("*.py")}
    assert {"numpy", "jax", "cupy", "strict"} <= names
