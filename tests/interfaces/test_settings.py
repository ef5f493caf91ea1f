"""Settings from LASH_* variables: embedded defaults, production URLs, and typed refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from lash_tasks.errors import InvalidEnvironment
from lash_tasks.settings import Settings


def test_unset_environment_is_the_embedded_default(tmp_path: Path) -> None:
    """No variables → SQLite file, folder broker, local attachments, scripted provider."""
    settings = Settings.from_env({"LASH_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'lash.db'}"
    assert settings.embedded_broker
    assert settings.attachments_url == (tmp_path / "attachments").as_uri()
    assert settings.provider == "scripted"
    options = settings.broker_transport_options()
    assert options["data_folder_in"] == str(tmp_path / "broker")
    assert options["visibility_timeout"] >= 6 * settings.step_time_limit_s


def test_production_urls_are_taken_as_given(tmp_path: Path) -> None:
    """PostgreSQL and Redis URLs pass through; Redis doubles as the coalescing store."""
    settings = Settings.from_env(
        {
            "LASH_HOME": str(tmp_path),
            "LASH_DATABASE_URL": "postgresql+psycopg2://u@db/lash",
            "LASH_BROKER_URL": "redis://r:6379/0",
        }
    )
    assert settings.database_url == "postgresql+psycopg2://u@db/lash"
    assert not settings.embedded_broker
    assert settings.redis_url == "redis://r:6379/0"
    assert settings.result_backend is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"LASH_LEASE_TTL_MS": "abc"}, "LASH_LEASE_TTL_MS"),
        ({"LASH_LEASE_TTL_MS": "3000", "LASH_LEASE_RENEW_MS": "2000"}, "LASH_LEASE_TTL_MS"),
        ({"LASH_SWEEP_INTERVAL_S": "0"}, "LASH_SWEEP_INTERVAL_S"),
        ({"LASH_HEARTBEAT_MS": "10"}, "LASH_HEARTBEAT_MS"),
        ({"LASH_HEARTBEAT_MS": "1s"}, "LASH_HEARTBEAT_MS"),
        ({"LASH_STEP_MAX_ATTEMPTS": "0"}, "LASH_STEP_MAX_ATTEMPTS"),
        ({"LASH_STEP_MAX_ATTEMPTS": "five"}, "LASH_STEP_MAX_ATTEMPTS"),
        ({"LASH_LLM_STREAM": "maybe"}, "LASH_LLM_STREAM"),
    ],
)
def test_bad_values_raise_a_typed_error_naming_the_variable(
    env: dict[str, str], names: str
) -> None:
    """A malformed LASH_* value is refused with InvalidEnvironment naming the variable."""
    with pytest.raises(InvalidEnvironment) as info:
        Settings.from_env(env)
    assert names in info.value.message


def test_heartbeat_interval_defaults_to_one_second(tmp_path: Path) -> None:
    """LASH_HEARTBEAT_MS unset → 1000 ms; set → taken as given."""
    assert Settings.from_env({"LASH_HOME": str(tmp_path)}).heartbeat_ms == 1000
    assert Settings.from_env({"LASH_HEARTBEAT_MS": "250"}).heartbeat_ms == 250


def test_step_max_attempts_defaults_to_five_and_is_read(tmp_path: Path) -> None:
    """LASH_STEP_MAX_ATTEMPTS bounds a failing step's starts; unset it is 5."""
    assert Settings.from_env({"LASH_HOME": str(tmp_path)}).step_max_attempts == 5
    env = {"LASH_HOME": str(tmp_path), "LASH_STEP_MAX_ATTEMPTS": "2"}
    assert Settings.from_env(env).step_max_attempts == 2


def test_llm_streaming_follows_live_events(tmp_path: Path) -> None:
    """HTTP LLM providers stream exactly when live events are on (Redis configured), unless
    LASH_LLM_STREAM says otherwise."""
    home = {"LASH_HOME": str(tmp_path)}
    assert not Settings.from_env(home).llm_stream
    with_redis = {**home, "LASH_REDIS_URL": "redis://127.0.0.1:6379/3"}
    assert Settings.from_env(with_redis).llm_stream
    assert Settings.from_env({**home, "LASH_BROKER_URL": "redis://127.0.0.1:6379/0"}).llm_stream
    assert not Settings.from_env({**with_redis, "LASH_LLM_STREAM": "off"}).llm_stream
    assert Settings.from_env({**home, "LASH_LLM_STREAM": "1"}).llm_stream
