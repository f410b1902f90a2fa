"""kd_rl's modules form no import cycle, function-local imports included (issue #32).

The graph is built from the source with `ast`: an edge A -> B for every
``import B`` / ``from B import name`` in A, at the top or inside a function.
``from package import submodule`` is an edge to the submodule (a package's
``__init__`` importing its own submodules is not a cycle). A cycle hidden in a
function-local import still breaks the reader's picture of the layers, and
becomes a real import error the day someone moves the import to the top.
"""

import ast
from pathlib import Path

import kd_rl

PACKAGE = Path(kd_rl.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
                targets = submodules or [base]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle_through_a_function_local_import(tmp_path):
    (tmp_path / "a.py").write_text("import x.b\n")
    (tmp_path / "b.py").write_text("def f():\n    from x import c\n")
    (tmp_path / "c.py").write_text("from x.a import thing\n")
    (tmp_path / "d.py").write_text("import x.a\n")
    modules = {f"x.{n}": tmp_path / f"{n}.py" for n in "abcd"}
    assert _cycles(_graph(modules)) == [["x.a", "x.b", "x.c"]]


def test_kd_rl_has_no_import_cycle():
    graph = _graph(_modules())
    assert graph["kd_rl.teachers.agents"] >= {"kd_rl.teachers.kickstart"}  # the graph sees real edges
    assert _cycles(graph) == []


def test_no_private_name_is_imported_across_modules():
    """A name starting with ``_`` is its module's own: another module that needs it needs a public one."""
    crossing = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kd_rl"):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    # kd_rl._io and kd_rl._validate are private modules of public helpers: importing the module is fine.
                    if private and f"{node.module}.{alias.name}" not in _modules():
                        crossing.append(f"{name} imports {node.module}.{alias.name}")
    assert crossing == []


#: The modules that may import kd_rl modules inside a function, and why: the boundaries that keep a
#: heavy import out of a light path. Everything else imports what it uses at the top.
LOCAL_IMPORT_BOUNDARIES = {
    "kd_rl.cli": "kd-rl --help and argument errors come before TensorFlow is imported",
    "kd_rl.policies": "NumpyPolicy and TFLitePolicy run without TensorFlow; Keras models need kd_rl.models",
    "kd_rl.evaluate": "evaluating a NumPy or TFLite export needs no TensorFlow; Keras models need kd_rl.models",
    "kd_rl.distributed": "a Ray actor sets TensorFlow's threads before its collector imports the rest",
}


def test_library_modules_import_kd_rl_at_the_top():
    local = set()
    for name, path in _modules().items():
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kd_rl"):
                        local.add(name)
    assert local <= set(LOCAL_IMPORT_BOUNDARIES), sorted(local - set(LOCAL_IMPORT_BOUNDARIES))
