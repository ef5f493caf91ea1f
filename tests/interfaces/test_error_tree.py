"""Every error lives in the one tree in lash_tasks/errors.py, and its docstring draws it whole."""

from __future__ import annotations

import ast
from pathlib import Path

import lash_tasks
from lash_tasks import errors

PACKAGE = Path(lash_tasks.__file__).parent
ERRORS = PACKAGE / "errors.py"


def _error_classes() -> set[str]:
    return {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.LashError)
    }


def test_no_error_class_is_defined_outside_errors_py() -> None:
    """No module but errors.py defines a class deriving from an error of the tree."""
    tree_names = _error_classes()
    outside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == ERRORS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            }
            if bases & tree_names or any(b.endswith(("Error", "Exception")) for b in bases):
                outside.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert outside == []


def test_the_docstring_draws_every_error_class() -> None:
    """Each LashError subclass in errors.py appears, by name, in the module docstring's tree."""
    drawn = {
        line.split("── ")[1].split()[0]
        for line in (errors.__doc__ or "").splitlines()
        if "── " in line
    }
    assert _error_classes() - {"LashError"} == drawn
