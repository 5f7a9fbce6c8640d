"""Settings come from the environment once; a bad one names itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from quartchat.config import Settings
from quartchat.errors import ConfigError


def test_defaults_run_one_process_on_sqlite() -> None:
    settings = Settings.from_env({})
    assert settings.db_path == Path("chat.db")
    assert (settings.backlog, settings.replay_limit, settings.history_max) == (50, 500, 200)
    assert settings.max_frame_bytes == 64 * 1024
    assert settings.leave_grace == 5.0
    assert (settings.static_dir / "index.html").is_file()


def test_values_are_read_and_typed() -> None:
    settings = Settings.from_env(
        {
            "QUARTCHAT_DB": "/tmp/x.db",
            "QUARTCHAT_BACKLOG": "10",
            "QUARTCHAT_QUEUE_SIZE": "64",
            "QUARTCHAT_ALLOWED_ORIGINS": "https://a.example, https://b.example/",
            "QUARTCHAT_SEND_RATE": "2.5",
            "QUARTCHAT_LEAVE_GRACE": "0",
        }
    )
    assert settings.db_path == Path("/tmp/x.db")
    assert settings.backlog == 10
    assert settings.queue_size == 64
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.send_rate == 2.5
    assert settings.leave_grace == 0.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUARTCHAT_BACKLOG", "many"),
        ("QUARTCHAT_BACKLOG", "-1"),
        ("QUARTCHAT_REPLAY_LIMIT", "0"),
        ("QUARTCHAT_QUEUE_SIZE", "1.5"),
        ("QUARTCHAT_SEND_RATE", "0"),
        ("QUARTCHAT_HELLO_TIMEOUT", "soon"),
        ("QUARTCHAT_LEAVE_GRACE", "-1"),
        ("QUARTCHAT_ALLOWED_ORIGINS", "example.org"),
        ("QUARTCHAT_STATIC_DIR", "/nonexistent"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_redis_settings_are_read_and_unset_means_the_embedded_log() -> None:
    assert Settings.from_env({}).redis_url is None
    settings = Settings.from_env(
        {
            "QUARTCHAT_REDIS_URL": "redis://127.0.0.1:6380/2",
            "QUARTCHAT_REDIS_PREFIX": "chat-a:",
            "QUARTCHAT_REDIS_MAX_MESSAGES": "100000",
            "QUARTCHAT_REDIS_HEARTBEAT_TTL": "2.5",
        }
    )
    assert settings.redis_url == "redis://127.0.0.1:6380/2"
    assert settings.redis_prefix == "chat-a:"
    assert settings.redis_max_messages == 100_000
    assert settings.redis_heartbeat_ttl == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUARTCHAT_REDIS_URL", "localhost:6379"),
        ("QUARTCHAT_REDIS_MAX_MESSAGES", "-5"),
        ("QUARTCHAT_REDIS_HEARTBEAT_TTL", "0"),
    ],
)
def test_a_bad_redis_setting_fails_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
