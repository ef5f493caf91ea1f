"""docker/: the compose file and the image, read as files (no Docker engine in tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lash_tasks.cli import _parser

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _lash_services(compose: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in compose["services"].items() if "build" in s}


def test_compose_needs_no_variable_unless_its_service_is_asked_for(
    compose: dict[str, Any],
) -> None:
    """No `${VAR:?}` anywhere: `up` works with nothing set; Flower and the gateway, which
    need credentials, start only with their profile (and refuse without them)."""
    assert not re.search(r"\$\{[A-Z_]+:?\?", COMPOSE.read_text())
    services = compose["services"]
    assert services["flower"]["profiles"] == ["flower"]
    assert services["gateway"]["profiles"] == ["gateway"]
    assert "LASH_FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert "LASH_HTTP_TOKEN" in services["gateway"]["environment"]


def test_redis_and_postgres_have_healthchecks_the_fleet_waits_for(
    compose: dict[str, Any],
) -> None:
    """Redis and PostgreSQL report health; workers and beat start once Redis is healthy."""
    services = compose["services"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    for name in ("worker", "beat"):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_every_compose_command_is_a_lash_tasks_command(compose: dict[str, Any]) -> None:
    """Each lash service's command parses as `lash-tasks …` (the image's entry point)."""
    assert 'ENTRYPOINT ["lash-tasks"]' in DOCKERFILE.read_text()
    parser = _parser()
    for name, service in _lash_services(compose).items():
        args, _ = parser.parse_known_args(service["command"])
        assert getattr(args, "handler", None) is not None, name


def test_the_attachments_volume_is_writable_by_the_image_user(compose: dict[str, Any]) -> None:
    """The volume is mounted where LASH_ATTACHMENTS_URL points, and the image creates that
    folder owned by its non-root user (a new named volume takes the folder's ownership)."""
    env = compose["x-lash-env"]
    path = env["LASH_ATTACHMENTS_URL"].removeprefix("file://")
    for name in ("worker", "beat"):
        assert f"attachments:{path}" in compose["services"][name]["volumes"]
    dockerfile = DOCKERFILE.read_text()
    assert "USER lash" in dockerfile
    assert f"mkdir -p {path}" in dockerfile
    assert re.search(r"chown -R lash:lash [^\n]*/data", dockerfile)
    assert dockerfile.index("chown") < dockerfile.index("USER lash")


def test_the_image_installs_the_extras_its_commands_need(compose: dict[str, Any]) -> None:
    """Flower and the gateway run from the same image: it installs both extras."""
    assert "'.[flower,server]'" in DOCKERFILE.read_text()


def test_the_build_context_leaves_local_state_out() -> None:
    """.dockerignore keeps environments, local databases and git out of the image."""
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".lash", "**/__pycache__", ".env"):
        assert entry in ignored
