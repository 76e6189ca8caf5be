"""Read the imports of our source files with ``ast``, resolving relative imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from burrowd.protocol.build import package_roots

__all__ = ["Import", "imports_of", "package_files"]


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is imported and whether at import time."""

    module: str
    path: Path
    line: int
    #: False for an import inside a function body (it runs only when the function does).
    module_level: bool


def package_files(name: str) -> Iterator[tuple[Path, str]]:
    """Yield every ``.py`` file of ``burrowd.<name>`` with its dotted package name."""
    [root] = [Path(r) for r in package_roots() if Path(r).name == name]
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        # A module's package, or for an ``__init__.py`` the package itself: the same parts.
        yield path, ".".join(["burrowd", name, *parts[:-1]])


def _resolve(node: ast.ImportFrom, package: str) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = package.split(".")
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, node.module] if node.module else parts)
    if node.module is None:
        # ``from . import x``: each name may be a submodule.
        return [f"{base}.{alias.name}" for alias in node.names]
    return [base]


def imports_of(path: Path, package: str) -> Iterator[Import]:
    """Yield every import of the file at ``path``, which belongs to ``package``."""
    tree = ast.parse(path.read_text(), str(path))

    def visit(node: ast.AST, module_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(alias.name, path, child.lineno, module_level)
            elif isinstance(child, ast.ImportFrom):
                for name in _resolve(child, package):
                    yield Import(name, path, child.lineno, module_level)
            # Function bodies run later; class bodies, ifs and trys run at import time.
            inside_function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from visit(child, module_level and not inside_function)

    yield from visit(tree, True)
