"""docs/ingress.md publishes exactly the schemas the workers validate against."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from lash_tasks.ingress.contract import payload_schemas

DOC = Path(__file__).resolve().parents[2] / "docs" / "ingress.md"
SECTION = re.compile(r"(<!-- schemas:begin[^\n]*-->\n)(.*?)(<!-- schemas:end -->)", re.DOTALL)


def rendered_schemas() -> str:
    parts = []
    for task, schema in payload_schemas().items():
        parts.append(f"### `{task}`\n\n```json\n{json.dumps(schema, indent=2)}\n```\n")
    return "\n".join(parts)


def test_the_documented_schemas_are_the_generated_ones() -> None:
    """The schema section of docs/ingress.md equals what `lash-tasks schema` prints.
    LASH_WRITE_DOCS=1 rewrites the section after a payload model changed."""
    text = DOC.read_text()
    match = SECTION.search(text)
    assert match is not None, "docs/ingress.md lost its schema markers"
    expected = rendered_schemas()
    if os.environ.get("LASH_WRITE_DOCS") == "1":
        DOC.write_text(text[: match.start(2)] + expected + text[match.end(2) :])
        return
    assert match.group(2) == expected, (
        "docs/ingress.md is out of date: run LASH_WRITE_DOCS=1 pytest "
        "tests/interfaces/test_ingress_doc.py"
    )


def test_every_ingress_task_is_documented_with_its_queue() -> None:
    """Each ingress task is named in the doc, and so is the queue a sender must use."""
    text = DOC.read_text()
    for task in payload_schemas():
        assert f"`{task}`" in text
    assert 'queue="lash.ingress"' in text
