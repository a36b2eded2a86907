"""The package's shape: no import circle, a thin command line, and nothing heavy imported by the modules
that must load before MXNet (ARCHITECTURE.md)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "d2lrnn"


def _module(path):
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def imports():
    """{module: set of d2lrnn modules it imports, at the top or inside functions}."""
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        found = set()
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # `from . import x` imports module x; `from .x import y` module x
                    found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in paths else target)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in paths and m != name}
    return graph


def test_no_import_circle():
    graph = imports()
    lazy = {"d2lrnn"}  # the package's __init__ loads names on first use only
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node] - lazy):
            assert state.get(nxt) != "open", f"import circle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_command_line_only_parses_and_calls():
    assert len((PACKAGE / "cli.py").read_text().splitlines()) <= 350


def test_early_modules_import_nothing_heavy():
    for name in ("__init__.py", "__main__.py", "signals.py", "_compat.py", "colab.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        modules = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom) and not n.level}
        assert not modules & {"mxnet", "numpy", "matplotlib"}, (name, modules)
