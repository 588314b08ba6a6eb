"""The package's shape, read from its imports: layers depend downward only, no import circles, and no
private name (``_x``) crosses a package boundary (docs/design.md)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "textrnn"
LAYERS = [  # top to bottom; a module may import its own layer's modules and every layer below
    {"cli", "serve", "__main__", "__init__"},
    {"api"},
    {"training", "plot"},
    {"export"},
    {"inference"},
    {"checkpoint", "data"},
    {"model", "tokenizer", "layers", "mincells"},
    {"config", "runconfig", "declare", "errors", "files", "condition", "process", "labelkey"},
]


def _modules() -> dict[str, Path]:
    """Module name -> file (a package by its own name: ``textrnn.cli`` for textrnn/cli/__init__.py)."""
    names = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return names


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """Each textrnn module ``name`` imports (anywhere in it), with the names it takes from it."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in
                   ast.unparse(block.test) for n in ast.walk(block)}  # (imports for type hints do not run)
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("textrnn"):
                continue
            names = [a.name for a in node.names]
            modules = {m for m in _modules() if m in {f"{target}.{n}" for n in names}}
            rest = [n for n in names if f"{target}.{n}" not in modules]
            found += [(m, []) for m in modules] + ([(target, rest)] if rest else [])
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("textrnn")]
    return found


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    for k, names in enumerate(LAYERS):
        if part in names:
            return k
    raise AssertionError(f"{module}: in no layer of tests/test_layout.py")


def _package(module: str) -> str:
    return module.split(".")[1] if module.count(".") > 1 else module


MODULES = _modules()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_downward_and_take_no_private_names(name):
    for target, names in _imports(name, MODULES[name]):
        if target == "textrnn":  # the package's own __init__ (its version): beneath everything
            continue
        assert _layer(target) >= _layer(name), f"{name} imports {target}, a layer above it"
        if _package(target) != _package(name):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{name} takes private names {private} from {target}"


def test_no_import_circles():
    graph = {name: {t for t, _ in _imports(name, path) if t in MODULES and t != name} for name, path in MODULES.items()}
    done, path = set(), []

    def visit(node):
        if node in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        path.append(node)
        for nxt in graph[node]:
            visit(nxt)
        path.pop()
        done.add(node)

    for node in graph:
        visit(node)
