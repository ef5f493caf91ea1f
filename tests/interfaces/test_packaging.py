"""The installed wheel holds the lash_tasks package and nothing else at the top level."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_the_wheel_installs_no_top_level_celeryconfig_or_beat_schedule(tmp_path: Path) -> None:
    """Built from the repository's files, the wheel has no top-level module but lash_tasks:
    other projects keep their own `celeryconfig` and `beat_schedule` in site-packages."""
    # Given: a copy of what a build reads (building in the checkout would leave build/ there),
    # including the top-level entry points, so that listing them would put them in the wheel.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "celeryconfig.py", "beat_schedule.py"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "lash_tasks", source / "lash_tasks", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path / "wheels"

    # When: pip builds the wheel offline, with the setuptools of the test environment.
    build = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    done = subprocess.run(
        [sys.executable, "-m", "pip", *build, "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    # Then: only lash_tasks (and its metadata) is at the top; the configuration is inside it.
    (wheel,) = out.glob("lash_tasks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"lash_tasks"}, sorted(top)
    assert "lash_tasks/worker/celery_config.py" in names
    assert "lash_tasks/worker/beat_schedule.py" in names
    # `lash-tasks db upgrade` from the wheel: every migration and Alembic's template.
    migrations = REPO / "lash_tasks" / "store" / "migrations"
    for path in [
        migrations / "env.py",
        migrations / "script.py.mako",
        *sorted((migrations / "versions").glob("*.py")),
    ]:
        assert path.relative_to(REPO).as_posix() in names, path

    # And: the heavy parts are extras with bounds; the base install has neither.
    (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(metadata_name).decode()
    extras = {
        line.split(": ", 1)[1]
        for line in metadata.splitlines()
        if line.startswith("Provides-Extra: ")
    }
    assert {"flower", "server"} <= extras
    requires = [
        line.split(": ", 1)[1]
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    base = [r for r in requires if "extra ==" not in r]
    assert not [r for r in base if r.startswith(("flower", "fastapi", "uvicorn"))], base
    for package, extra in (("flower", "flower"), ("fastapi", "server"), ("uvicorn", "server")):
        [spec] = [r for r in requires if r.startswith(package) and f'extra == "{extra}"' in r]
        assert "<" in spec and ">=" in spec, spec
    assert "lash_tasks/py.typed" in names  # PEP 561: the package ships its annotations
