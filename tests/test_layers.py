"""The layers of docs/architecture.md, checked on every .py file's imports (read with ast, those inside
functions included): no import cycle between project modules, and no module importing a higher layer.
"""
import ast
import re
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# folder -> layer, bottom (0) to top. A module may import its own layer and the
# layers below; a file's layer is that of the deepest folder here that holds it.
LAYERS = {
    "utils": 0,  # the ground helpers: the .py files directly in utils/
    "models": 1,
    "data": 1,
    "utils/engine": 2,
    "utils/stages": 3,
    "world-models": 4,
    "transformers-wm": 4,
    "trade": 4,
    "bench": 4,
    "tests": 4,
    # A script of the user's layout that lives in data/ but is an entry point: with --controller
    # it drives a trained agent (utils/engine/collect.py).
    "data/generation_script.py": 4,
}
LAYER_NAMES = ("ground (utils/*.py)", "models and data", "engine (utils/engine)", "stages (utils/stages)",
               "entry points (experiment scripts, bench, tests)")
IMPORT_CALLS = ("importlib.import_module", "import_module", "__import__")


def project_files(root):
    """Every .py file below root (relative paths), outside hidden folders and virtual environments."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "__pycache__"
                               and not (Path(folder) / d / "pyvenv.cfg").exists())
        yield from (Path(folder, f).relative_to(root) for f in sorted(files) if f.endswith(".py"))


def module_name(path):
    """utils/engine/pool.py -> utils.engine.pool; a package's __init__.py -> the package."""
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(path):
    """The layer of a file (or folder) path: the file's own entry in LAYERS, else that of the deepest
    folder of LAYERS that holds it; None where none does."""
    folders = [p.as_posix() for p in (Path(path), *Path(path).parents) if p.as_posix() in LAYERS]
    return LAYERS[folders[0]] if folders else None


def dotted(node):
    """"a.b.c" for the expression a.b.c, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := dotted(node.value)):
        return f"{base}.{node.attr}"
    return None


def imports_of(tree, module, is_package):
    """(line, module, name) for each import in tree, anywhere in it: `import a.b` gives (line, "a.b", None),
    `from a import b` (line, "a", "b"), relative imports made absolute; importlib.import_module("a.b")
    and __import__("a.b") with a literal name count as `import a.b`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, base, alias.name
        elif (isinstance(node, ast.Call) and dotted(node.func) in IMPORT_CALLS and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value, None


def import_graph(root):
    """(files, edges, unresolved): files {module: path}; edges [(module, line, imported module)]
    between project modules; unresolved [(path, line, name)]: imports of a project package that name
    no module of it."""
    files = {module_name(p): p for p in project_files(root)}
    packages = {".".join(p.parents[i].parts) for p in files.values() for i in range(len(p.parts) - 1)}
    tops = {name.split(".")[0] for name in files if name.split(".")[0].isidentifier()}
    edges, unresolved = [], []
    for module, path in files.items():
        tree = ast.parse((root / path).read_text(), str(path))
        for line, name, attr in imports_of(tree, module, path.name == "__init__.py"):
            if name.split(".")[0] not in tops:
                continue  # the standard library or a third-party package
            target = next((m for m in (attr and f"{name}.{attr}", name) if m and m in files), None)
            if target is not None:
                edges.append((module, line, target))
            elif name not in packages:  # importing a namespace package (tests/) alone is no dependency
                unresolved.append((path, line, name))
    return files, sorted(set(edges)), unresolved


def cycles(nodes, edges):
    """One cycle (a list of modules, first = last) per strongly connected component of more than one
    module, or of one module importing itself (Tarjan's algorithm)."""
    succ = {n: sorted({b for a, _, b in edges if a == n}) for n in nodes}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in succ[v]:
                found.append(path_back(v, component, succ))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def path_back(start, component, succ):
    """A shortest import path from start back to itself inside its component."""
    parent, frontier = {}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in succ[v]:
                if w in component and w not in parent:
                    parent[w] = v
                    if w == start:
                        path = [start]
                        while len(path) == 1 or path[-1] != start:
                            path.append(parent[path[-1]])
                        return path[::-1]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start}: no cycle in its component")


def upward_imports(files, edges):
    """'path:line: module (layer) imports module (higher layer)' for each import of a higher layer."""
    found = []
    for module, line, target in edges:
        low, high = layer_of(files[module]), layer_of(files[target])
        if low is not None and high is not None and high > low:
            found.append(f"{files[module]}:{line}: {module} ({LAYER_NAMES[low]}) imports {target} "
                         f"({LAYER_NAMES[high]})")
    return found


def test_every_module_has_a_layer():
    files, edges, _ = import_graph(ROOT)
    assert {"utils.constants", "data.carracing", "models.vae", "utils.engine.pool", "utils.stages.scoring",
            "world-models.trainvae", "tests.test_layers"} <= set(files)  # the scan sees the project
    assert ("utils.engine.pool", "utils.devices") in {(a, b) for a, _, b in edges}
    homeless = [str(p) for p in files.values() if layer_of(p) is None]
    assert not homeless, f"files in no layer: add their folder to LAYERS in {__file__}: {homeless}"


def test_the_architecture_page_names_every_module():
    """docs/architecture.md names each module of the shared code, the experiments and the benchmarks by its file
    name (tests excepted: they name what they test)."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    files = [p for p in project_files(ROOT) if p.parts[0] in LAYERS and p.parts[0] != "tests"
             and p.name != "__init__.py"]
    assert len(files) > 40, "the scan sees the project"
    unnamed = [str(p) for p in files if not re.search(rf"(?<![\w.-]){re.escape(p.name)}", page)]
    assert not unnamed, f"docs/architecture.md names none of: {unnamed}"


def test_project_imports_name_existing_modules():
    _, _, unresolved = import_graph(ROOT)
    assert not unresolved, "imports of no project module:\n" + "\n".join(f"{p}:{n}: {m}" for p, n, m in unresolved)


def test_no_import_cycles():
    files, edges, _ = import_graph(ROOT)
    found = cycles(files, edges)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_module_imports_a_higher_layer():
    files, edges, _ = import_graph(ROOT)
    found = upward_imports(files, edges)
    assert not found, "imports of a higher layer:\n" + "\n".join(found)


def test_no_stage_imports_another_stage():
    """A stage is one script's work: what two stages share lives below them (docs/architecture.md)."""
    files, edges, _ = import_graph(ROOT)
    stage = LAYERS["utils/stages"]
    across = [f"{files[a]}:{line} imports {b}" for a, line, b in edges
              if a != b and layer_of(files[a]) == stage and layer_of(files[b]) == stage]
    assert not across, "\n".join(across)


def test_the_checks_catch_cycles_upward_and_dangling_imports(tmp_path):
    sources = {
        "utils/__init__.py": "",
        "utils/ground.py": "def f():\n    from utils.engine import pool\n",  # upward, inside a function
        "utils/engine/__init__.py": "",
        "utils/engine/pool.py": "from .rollout import play\n",
        "utils/engine/rollout.py": "import importlib\nimportlib.import_module('utils.engine.pool')\n",
        "data/loaders.py": "import utils.ground\nfrom utils.gone import f\nimport numpy\n",
    }
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    files, edges, unresolved = import_graph(tmp_path)
    assert cycles(files, edges) == [["utils.engine.pool", "utils.engine.rollout", "utils.engine.pool"]]
    assert upward_imports(files, edges) == [
        "utils/ground.py:2: utils.ground (ground (utils/*.py)) imports utils.engine.pool (engine (utils/engine))"]
    assert unresolved == [(Path("data/loaders.py"), 2, "utils.gone")]
