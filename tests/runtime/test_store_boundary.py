"""The runtime and the attachment code reach the store only through its contracts."""

from __future__ import annotations

import ast
from pathlib import Path

import lash_tasks

PACKAGE = Path(lash_tasks.__file__).parent
# Protocols the runtime is typed against, and the plain values the store hands out.
ALLOWED = {
    "lash_tasks.store.contracts",
    "lash_tasks.store.records",
    "lash_tasks.store.step_records",
    "lash_tasks.store.process_records",
}


def store_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "lash_tasks.store" or n.startswith("lash_tasks.store.")}


def test_runtime_and_attachments_import_no_store_part() -> None:
    """No module of runtime/ or attachments/ imports a store part, `Database` or `Store`:
    only `store.contracts` and `store.records`."""
    modules = sorted((PACKAGE / "runtime").glob("*.py")) + sorted(
        (PACKAGE / "attachments").glob("*.py")
    )
    assert len(modules) > 10
    offending = {
        str(path.relative_to(PACKAGE)): sorted(store_imports(path) - ALLOWED)
        for path in modules
        if store_imports(path) - ALLOWED
    }
    assert offending == {}
