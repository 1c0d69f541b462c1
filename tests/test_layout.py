"""The house rules (docs/architecture.md), checked on the source: only backends/ imports a concrete
array library (host-side modules may use numpy); portanet/ has no import cycle and no import
inside a function; no module uses another module's private names; no module is over ~400
lines; no code outside backends/ asks which backend it runs on."""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "portanet"
ARRAY_LIBRARIES = {"numpy", "jax", "jaxlib", "cupy", "cupyx", "array_api_strict", "torch"}
# Host-side modules: I/O, dataset loading, data batching, host reports, plots. numpy only.
HOST_MODULES = ("io.py", "datasets/", "training/data.py", "reports.py", "plot.py", "testing.py", "__main__.py")
MAX_LINES = 420


def sources():
    return sorted(PACKAGE.rglob("*.py"))


def relative(path):
    return path.relative_to(PACKAGE).as_posix()


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_roots(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def portanet_imports(path):
    """(module imported, [names taken from it], line) of every import of a portanet module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("portanet"):
            base = node.module
        else:
            continue
        for alias in node.names:  # `from .x import y`: y is a module of its own, or a name of x
            sub = f"{base}.{alias.name}"
            is_module = (ROOT / pathlib.Path(*sub.split("."))).with_suffix(".py").exists() or (
                ROOT / pathlib.Path(*sub.split(".")) / "__init__.py").exists()
            yield (sub, [], node.lineno) if is_module else (base, [alias.name], node.lineno)


def test_core_imports_no_array_library():
    offenders = {}
    for path in sources():
        allowed = {"numpy"} if relative(path).startswith(HOST_MODULES) else set()
        bad = (set(imported_roots(path)) & ARRAY_LIBRARIES) - allowed
        if bad:
            offenders[relative(path)] = sorted(bad)
    assert not offenders, f"array libraries imported outside backends/: {offenders}"


def test_the_check_sees_an_offender(tmp_path):
    bad = tmp_path / "layer.py"
    bad.write_text("import jax.numpy as jnp\nfrom numpy import zeros\n")
    assert set(imported_roots(bad)) == {"jax", "numpy"}


def test_backend_modules_exist():
    names = {p.stem for p in (ROOT / "backends").glob("*.py")}
    assert {"numpy", "jax", "cupy", "strict"} <= names


def import_graph():
    graph = {module_name(path): set() for path in sources()}
    for path in sources():
        for target, _, _ in portanet_imports(path):
            if target in graph and target != module_name(path):
                graph[module_name(path)].add(target)
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_inside_a_function():
    offenders = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                offenders += [f"{relative(path)}:{inner.lineno}" for inner in ast.walk(node)
                              if isinstance(inner, (ast.Import, ast.ImportFrom))
                              and any(alias.name.startswith(("portanet", ".")) or inner.level for alias in inner.names)]
    assert not offenders, f"portanet modules imported inside functions (a cycle dodged?): {offenders}"


def test_no_private_names_taken_from_other_modules():
    offenders = []
    for path in sources():
        for target, names, line in portanet_imports(path):
            offenders += [f"{relative(path)}:{line} {target}.{n}" for n in names if n.startswith("_")
                          and n != "__version__"]
        text = path.read_text()
        offenders += [f"{relative(path)}: {m}" for m in re.findall(r"\b(?:model|graph|layer|optimizer)\._[a-z]\w*", text)
                      if not path.name.startswith(("model", "graph"))]
    assert not offenders, f"private names used across modules: {offenders}"


@pytest.mark.parametrize("path", sources(), ids=relative)
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES, f"{relative(path)}: split it"


def test_only_backends_ask_which_backend_runs():
    offenders = [f"{relative(p)}" for p in sources() if re.search(r"\.name\s*==\s*[\"'](jax|numpy|cupy|strict)",
                                                                 p.read_text())]
    assert not offenders, offenders
