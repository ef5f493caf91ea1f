"""`lash-tasks flower`: Flower behind authentication, its `/metrics` included.

Flower shows task arguments and results, so it never starts without basic auth. Flower 2.x
serves `/metrics` (Prometheus) without asking for credentials even then; this launcher puts
that one route behind the same check as every other page before Flower starts, and refuses
to start if it cannot (a Flower whose routes changed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from lash_tasks.errors import InvalidEnvironment, MissingDependency

AUTH_VARIABLE = "LASH_FLOWER_BASIC_AUTH"
CELERY_APP = "lash_tasks.worker.app"
# Options that would hand Flower's pages to anyone; the credentials go through the
# environment only, so that `ps` never shows them.
_REFUSED = ("--basic-auth", "--basic_auth", "--unauthenticated-api", "--unauthenticated_api")


def flower_arguments(
    env: Mapping[str, str], address: str, port: int | None, extra: Sequence[str]
) -> list[str]:
    """Flower's command-line options; sets FLOWER_BASIC_AUTH in this process's environment
    (inherited by the exec'd Flower). Refuses to start without credentials."""
    auth = env.get(AUTH_VARIABLE) or env.get("FLOWER_BASIC_AUTH")
    if not auth or ":" not in auth:
        raise InvalidEnvironment(
            f"Flower shows task arguments and results; set {AUTH_VARIABLE}=user:password "
            "to start it behind authentication",
            variable=AUTH_VARIABLE,
        )
    for option in extra:
        if option.split("=", 1)[0] in _REFUSED:
            raise InvalidEnvironment(
                f"{option.split('=', 1)[0]}: give the credentials in {AUTH_VARIABLE}, "
                "never on the command line",
                variable=AUTH_VARIABLE,
            )
    try:
        import flower  # noqa: F401
    except ImportError:
        raise MissingDependency(
            "Flower needs its extra: pip install 'lash-tasks[flower]'"
        ) from None
    os.environ["FLOWER_BASIC_AUTH"] = auth
    os.environ.pop("FLOWER_UNAUTHENTICATED_API", None)
    ports = [] if port is None else [f"--port={port}"]
    return [*ports, f"--address={address}", *extra]


def protect_metrics() -> None:
    """Replace Flower's `/metrics` handler with one that authenticates like its pages."""
    from flower import urls
    from flower.views.monitor import Metrics
    from tornado.web import HTTPError

    class AuthenticatedMetrics(Metrics):  # type: ignore[misc]
        def prepare(self) -> Any:
            # With basic auth, `current_user` raises 401 on missing or wrong credentials;
            # with OAuth it is None until the user logged in.
            if self.current_user is None:
                raise HTTPError(401)
            return super().prepare()

    for index, entry in enumerate(urls.handlers):
        # Most routes are (pattern, handler[, kwargs]) tuples; a few are tornado URLSpecs.
        if isinstance(entry, tuple) and entry[:2] == (r"/metrics", Metrics):
            urls.handlers[index] = (entry[0], AuthenticatedMetrics, *entry[2:])
            return
    raise MissingDependency(
        "this Flower version serves /metrics in a way lash-tasks cannot protect; "
        "install a version lash-tasks[flower] allows"
    )


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        protect_metrics()
    except MissingDependency as exc:
        print(f"lash-tasks flower: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", "-A", CELERY_APP, "flower", *arguments]
    celery_main()


if __name__ == "__main__":
    main()
