"""The layering of ``worldwarp_core`` (and of ``nodes``), read from the code's own import statements
(every ``import`` / ``from ... import``, at module level or inside a function): no import circle and
no arrow that runs back up.

An arrow runs back up when a module imports a package that contains it (the package's
``__init__`` imports its modules, so that is a circle waiting to happen), or when one of the
foundation modules (what every model and stage builds on) imports anything above them.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the bottom of worldwarp_core: they import each other only
FOUNDATION = {"worldwarp_core.loading", "worldwarp_core.model_files", "worldwarp_core.cameras",
              "worldwarp_core.schedule", "worldwarp_core.inputs", "worldwarp_core.limits"}


def modules_of(root: str, package: str) -> dict[str, str]:
    """``{dotted module name: file}`` of every ``.py`` under ``root/package``."""
    mods = {}
    for dirpath, _, files in os.walk(os.path.join(root, package)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                mods[name.removesuffix(".__init__")] = path
    return mods


def import_graph(root: str, package: str) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}``; ``from a import b`` counts as ``a.b``
    when ``a.b`` is a module, else as ``a``."""
    mods = modules_of(root, package)
    graph = {}
    for name, path in mods.items():
        is_pkg = path.endswith("__init__.py")
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), filename=path)):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here[:len(here) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    target = sub if sub in mods else base
                    if target in mods:
                        deps.add(target)
        deps.discard(name)
        graph[name] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def upward(graph: dict[str, set[str]], foundation: set[str]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        for d in sorted(deps):
            if mod.startswith(d + "."):
                bad.append(f"{mod} imports its own package {d}")
            elif mod in foundation and d not in foundation:
                bad.append(f"foundation module {mod} imports {d}")
    return bad


def test_core_has_no_import_circle():
    assert circles(import_graph(ROOT, "worldwarp_core")) == []


def test_core_has_no_upward_arrow():
    graph = import_graph(ROOT, "worldwarp_core")
    assert FOUNDATION <= set(graph)
    assert upward(graph, FOUNDATION) == []


def test_nodes_have_no_import_circle():
    graph = import_graph(ROOT, "nodes")
    assert circles(graph) == []
    assert upward(graph, set()) == []


def test_the_walker_sees_circles_and_upward_arrows(tmp_path):
    """The checks above can fail: a package with a circle through a function-level import and a
    module importing its own package."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def x():\n    from .a import y\n")
    (pkg / "c.py").write_text("import os\n")
    (pkg / "sub" / "__init__.py").write_text("from .d import z\n")
    (pkg / "sub" / "d.py").write_text("from .. import sub\nfrom ..c import w\n")
    graph = import_graph(str(tmp_path), "pkg")
    assert graph["pkg.b"] == {"pkg.a"} and graph["pkg.sub.d"] == {"pkg.sub", "pkg.c"}
    assert circles(graph) == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.d"]]
    assert upward(graph, {"pkg.c", "pkg.a"}) == ["foundation module pkg.a imports pkg.b",
                                                 "pkg.sub.d imports its own package pkg.sub"]
