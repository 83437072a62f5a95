"""The house rules the architecture relies on, checked on the source tree: no import cycle between bench's
modules (top-level or lazy imports alike), and no module over ~400 lines unless its docstring says why."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"io": "bench.io", "datasets": "bench.datasets", "harness": "bench.harness", "methods": "bench.methods",
            "gnr": "bench.gnr", "reports": "bench.reports"}
MAX_LINES = 400
WHY = "Length:"  # a module over MAX_LINES starts a docstring paragraph with this and says why it stays whole


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for f in (REPO / folder).rglob("*.py"):
            parts = list(f.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = f
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """bench modules ``name`` imports anywhere in its body (``from pkg import sub`` counts as importing ``sub``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    out = set()
    for m in found:
        while m and m not in known:
            m = m.rpartition(".")[0]
        if m and m != name:
            out.add(m)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycles():
    known = _modules()
    assert len(known) > 100  # the scan sees the tree
    graph = {n: _imports(n, p, known) for n, p in known.items()}
    assert "bench.harness.run" in graph["bench.harness.cli.run"]  # lazy imports are seen too
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_layers_point_down():
    """bench.io imports no other bench package; datasets import neither harness nor methods; reports no methods."""
    known = _modules()
    allowed = {"bench.io": (), "bench.datasets": ("bench.io",), "bench.reports": ("bench.io", "bench.harness")}
    for name, path in known.items():
        for layer, ok in allowed.items():
            if name.startswith(layer):
                bad = [m for m in _imports(name, path, known) if not m.startswith((layer, *ok))]
                assert not bad, f"{name} imports {bad}"


def test_long_modules_say_why():
    long = {}
    for name, path in _modules().items():
        n = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if n > MAX_LINES and not any(p.startswith(WHY) for p in doc.split("\n\n")):
            long[name] = n
    assert long == {}, f"modules over {MAX_LINES} lines without a '{WHY}' paragraph in their docstring: {long}"
