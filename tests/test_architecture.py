"""The house rules, checked statically over every import statement of the packages.

Layers (lowest first): ``lingjie`` (ground floor) < ``dataio`` < ``trainer`` < the domains
``easyrec | easycv | easynlp`` (which do not import each other) < ``automl`` < ``hydra_plugins``.
An import may only point down. Imports inside functions count too: trainer finds a domain
by name through its registry, never by an import statement. Also: no import cycles between
modules, no module uses another module's ``_private`` names, no function longer than 80 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANK = {"lingjie": 0, "dataio": 1, "trainer": 2, "easyrec": 3, "easycv": 3, "easynlp": 3, "automl": 4,
        "hydra_plugins": 5}
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in RANK:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


MODULES = _modules()
TREES = {m: ast.parse(f.read_text(encoding="utf-8"), str(f)) for m, f in MODULES.items()}


def _imports(module: str, tree: ast.Module) -> list[tuple[ast.AST, str, list[str]]]:
    """(node, imported module, names taken from it) for every import statement of ``module``."""
    is_pkg = MODULES[module].name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node, a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: None if is_pkg else -1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if subs and len(subs) == len(names):  # `from pkg import submodule`: edges to the submodules
                out.extend((node, s, []) for s in subs)
            else:
                out.append((node, target, [n for n in names if f"{target}.{n}" not in MODULES]))
    return out


def _top(name: str) -> str:
    return name.split(".")[0]


def upward_imports() -> list[str]:
    bad = []
    for m, tree in TREES.items():
        for node, target, _ in _imports(m, tree):
            a, b = _top(m), _top(target)
            if b in RANK and a != b and (RANK[b] > RANK[a] or RANK[b] == RANK[a]):
                bad.append(f"{m}:{node.lineno} imports {target}")
    return bad


def private_names() -> list[str]:
    """``from X import _name`` and ``alias._name`` where X / alias is another of our modules."""
    bad = []
    for m, tree in TREES.items():
        aliases = _module_aliases(m, tree)
        for node, target, names in _imports(m, tree):
            if isinstance(node, ast.ImportFrom) and _top(target) in RANK and target != m:
                bad += [f"{m}:{node.lineno} takes {target}.{n}" for n in names if _private(n)]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and aliases[node.value.id] != m):
                bad.append(f"{m}:{node.lineno} takes {aliases[node.value.id]}.{node.attr}")
    return bad


def _module_aliases(module: str, tree: ast.Module) -> dict[str, str]:
    """Local names bound to one of our modules (``from trainer import job``, ``import x.y as z``)."""
    aliases = {}
    for node, target, _ in _imports(module, tree):
        for a in node.names:
            if isinstance(node, ast.ImportFrom) and target.endswith(f".{a.name}") and target in MODULES:
                aliases[a.asname or a.name] = target
            elif isinstance(node, ast.Import) and a.asname and a.name == target and target in MODULES:
                aliases[a.asname] = target
    return aliases


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def cycles() -> list[list[str]]:
    edges = {m: {t for _, t, _ in _imports(m, tree) if t in MODULES and t != m} for m, tree in TREES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def long_functions() -> list[str]:
    out = []
    for m, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{m}.{node.name}: {n} lines")
    return out


def test_imports_point_down_the_layers() -> None:
    assert upward_imports() == []


def test_no_import_cycles() -> None:
    assert cycles() == []


def test_no_module_uses_another_modules_private_names() -> None:
    assert private_names() == []


def test_functions_fit_on_a_screen() -> None:
    assert long_functions() == []


def test_the_check_sees_violations(tmp_path: Path) -> None:
    """The walker itself works: an upward import and a private name in a snippet are found."""
    tree = ast.parse("from trainer.job import _device\nimport easyrec.models\n")
    MODULES["dataio._probe"] = tmp_path / "probe.py"
    TREES["dataio._probe"] = tree
    try:
        assert any("dataio._probe" in b and "easyrec.models" in b for b in upward_imports())
        assert any("trainer.job._device" in b for b in private_names())
    finally:
        del MODULES["dataio._probe"], TREES["dataio._probe"]


if __name__ == "__main__":  # a report: python tests/test_architecture.py
    for title, items in (("upward imports", upward_imports()), ("cycles", cycles()),
                         ("private names", private_names()), ("functions > 80 lines", long_functions())):
        print(f"{title}: {len(items)}")
        for item in items:
            print("   ", item)
