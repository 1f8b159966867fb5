"""No import cycle anywhere in keras_aff.

The graph has one node per module of the package (a package is its
`__init__`) and an edge for every import of another keras_aff module,
at module level or inside a function (a deferred import that closes a
cycle is still a cycle, only hidden). Read from the source with `ast`;
nothing is imported.
"""

import ast
import pathlib

import keras_aff

PACKAGE = pathlib.Path(keras_aff.__file__).parent


def module_names():
    """`{dotted name: path}` for every module of keras_aff."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(name, known):
    """The longest known module that `name` (a dotted import) names."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name, path, known):
    """The keras_aff modules that module `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            # `from pkg import sub` imports the submodule `pkg.sub`.
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != "keras_aff":
                continue
            resolved = _resolve(target, known)
            if resolved and resolved != name:
                found.add(resolved)
    return found


def import_graph():
    known = module_names()
    return {n: imports_of(n, p, known) for n, p in known.items()}


def find_cycle(graph):
    """One cycle as a list of modules, or None (iterative DFS)."""
    state = {}
    for start in sorted(graph):
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(child) == "open":
                return path[path.index(child) :] + [child]
            elif child not in state:
                state[child] = "open"
                path.append(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def test_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
        "a",
        "b",
        "c",
        "a",
    ]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_deferred_and_relative_imports():
    graph = import_graph()
    assert "keras_aff.kernels.fused" in graph["keras_aff.layers.dispatch"]
    assert "keras_aff.layers.gate" in graph["keras_aff.layers.aff"]


def test_keras_aff_imports_are_acyclic():
    assert find_cycle(import_graph()) is None
