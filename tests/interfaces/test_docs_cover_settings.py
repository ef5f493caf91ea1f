"""README and docs/ name every variable lash-tasks reads, and say what a new user asks."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"""["'`]((?:LASH|OPENAI|ANTHROPIC)_[A-Z][A-Z0-9_]*)["'`]""")


def variables_read() -> set[str]:
    """Every LASH_*, OPENAI_* and ANTHROPIC_* name quoted in the package's source."""
    found: set[str] = set()
    for path in (REPO / "lash_tasks").rglob("*.py"):
        found |= set(VARIABLE.findall(path.read_text()))
    return found


def docs_text() -> str:
    parts = [(REPO / "README.md").read_text()]
    parts += [p.read_text() for p in sorted((REPO / "docs").glob("*.md"))]
    return "\n".join(parts)


def test_every_variable_is_documented() -> None:
    """Each variable the package reads is named in README.md or docs/."""
    names = variables_read()
    assert {"LASH_HOME", "LASH_STEP_TIME_LIMIT_S", "ANTHROPIC_BASE_URL"} <= names
    text = docs_text()
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"not documented in README.md or docs/: {missing}"


def test_every_settings_field_has_a_variable() -> None:
    """Settings.from_env reads one LASH_* variable per tunable field, all of them documented."""
    source = (REPO / "lash_tasks" / "settings.py").read_text()
    read = set(re.findall(r'"(LASH_[A-Z0-9_]+)"', source))
    assert len(read) >= 30, read
    text = docs_text()
    assert not sorted(v for v in read if f"`{v}`" not in text)


def test_the_readme_answers_a_new_users_questions() -> None:
    """What "echo:" in the demo is, and where provider settings and scripted rules go."""
    readme = (REPO / "README.md").read_text()
    assert "`echo: <your text>`" in readme and "scripted LLM provider" in readme
    assert "belong in the workers' environment" in readme
    assert "LASH_SCRIPTED_RULES" in readme
    assert "docker compose -f docker/compose.yaml up --build --scale worker=4" in readme
