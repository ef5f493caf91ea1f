"""lash_tasks.machine is pure: importing any of it loads no database, HTTP, broker or cache."""

from __future__ import annotations

import subprocess
import sys
import textwrap

FORBIDDEN = ("sqlalchemy", "httpx", "celery", "kombu", "redis")

_PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import lash_tasks.machine as machine
    names = ["lash_tasks.machine"]
    for info in pkgutil.walk_packages(machine.__path__, "lash_tasks.machine."):
        importlib.import_module(info.name)
        names.append(info.name)
    forbidden = %r
    loaded = sorted(
        m for m in sys.modules if m.split(".")[0] in forbidden
    )
    # lash_tasks modules outside the machine that came along (the usual culprit when it fails).
    dragged = sorted(
        m for m in sys.modules
        if m.startswith("lash_tasks.")
        and not m.startswith(("lash_tasks.machine", "lash_tasks.errors"))
    )
    print(json.dumps({"modules": names, "loaded": loaded, "dragged": dragged}))
    """
)


def test_importing_the_machine_loads_no_io_libraries() -> None:
    """A fresh interpreter importing every lash_tasks.machine module has none of sqlalchemy,
    httpx, celery, kombu or redis in sys.modules."""
    import json

    done = subprocess.run(
        [sys.executable, "-c", _PROBE % (FORBIDDEN,)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "lash_tasks.machine.graph" in report["modules"]
    assert "lash_tasks.machine.commit_hash" in report["modules"]
    roots = sorted({name.split(".")[0] for name in report["loaded"]})
    assert roots == [], (
        f"importing lash_tasks.machine loaded {roots}; non-machine lash_tasks modules "
        f"imported along the way: {report['dragged']}"
    )
