"""The JWT settings and the ``jwt`` of a ``hello``, without a server: each
bad setting stops the start with one line naming it, and the key's type
pins the algorithm."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from quartchat.config import Settings
from quartchat.errors import ConfigError, FrameError
from quartchat.jwt_identity import JwtVerifier
from quartchat.protocol import Hello, parse_frame

SECRET = "s" * 32


def pem(tmp_path: Path, key: object, name: str = "key.pem") -> Path:
    path = tmp_path / name
    path.write_bytes(
        key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_jwt_settings_are_read(tmp_path: Path) -> None:
    key = pem(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    settings = Settings.from_env(
        {
            "QUARTCHAT_JWT_PUBLIC_KEY": str(key),
            "QUARTCHAT_JWT_AUDIENCE": "chat",
            "QUARTCHAT_JWT_ISSUER": "https://app.example",
            "QUARTCHAT_GUESTS": "0",
        }
    )
    assert settings.jwt_public_key == key
    assert (settings.jwt_audience, settings.jwt_issuer) == ("chat", "https://app.example")
    assert settings.guests is False
    assert Settings.from_env({}).guests is True
    assert SECRET not in repr(Settings.from_env({"QUARTCHAT_JWT_SECRET": SECRET}))


def test_the_key_pins_the_algorithm(tmp_path: Path) -> None:
    rsa_pem = pem(tmp_path, rsa.generate_private_key(65537, 2048), "rsa.pem")
    ec_pem = pem(tmp_path, ec.generate_private_key(ec.SECP256R1()), "ec.pem")
    verifiers = [
        JwtVerifier.configured(SECRET, None),
        JwtVerifier.configured(None, rsa_pem),
        JwtVerifier.configured(None, ec_pem),
    ]
    assert [v.algorithm if v else None for v in verifiers] == ["HS256", "RS256", "ES256"]
    assert JwtVerifier.configured(None, None) is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"QUARTCHAT_JWT_SECRET": "short"}, "QUARTCHAT_JWT_SECRET"),
        ({"QUARTCHAT_JWT_PUBLIC_KEY": "/nonexistent.pem"}, "QUARTCHAT_JWT_PUBLIC_KEY"),
        ({"QUARTCHAT_JWT_AUDIENCE": "chat"}, "QUARTCHAT_JWT_AUDIENCE"),
        ({"QUARTCHAT_JWT_ISSUER": "app"}, "QUARTCHAT_JWT_ISSUER"),
        ({"QUARTCHAT_GUESTS": "0"}, "QUARTCHAT_GUESTS"),
        ({"QUARTCHAT_GUESTS": "maybe"}, "QUARTCHAT_GUESTS"),
    ],
)
def test_a_bad_jwt_setting_names_itself_in_one_line(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        Settings.from_env(env)
    assert "\n" not in str(caught.value)


def test_a_short_secret_is_not_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"QUARTCHAT_JWT_SECRET": "hunter2"})
    assert "hunter2" not in str(caught.value)


def test_a_secret_and_a_key_at_once_are_refused(tmp_path: Path) -> None:
    key = pem(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    env = {"QUARTCHAT_JWT_SECRET": SECRET, "QUARTCHAT_JWT_PUBLIC_KEY": str(key)}
    with pytest.raises(ConfigError, match="both set: set one"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(65537, 1024),
    ],
    ids=["p384", "ed25519", "rsa1024"],
)
def test_other_keys_are_refused(tmp_path: Path, key: object) -> None:
    with pytest.raises(ConfigError, match="QUARTCHAT_JWT_PUBLIC_KEY"):
        Settings.from_env({"QUARTCHAT_JWT_PUBLIC_KEY": str(pem(tmp_path, key))})


def test_a_private_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "private.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError, match="not a PEM public key"):
        Settings.from_env({"QUARTCHAT_JWT_PUBLIC_KEY": str(path)})


def test_a_hello_carries_a_jwt_and_version_1_parses_as_before() -> None:
    assert parse_frame('{"type": "hello", "jwt": "a.b.c"}') == Hello(
        token=None, nick=None, last_id=None, epoch=None, jwt="a.b.c"
    )
    v1 = '{"type": "hello", "token": "t", "nick": "n", "last_id": 3, "epoch": "e"}'
    assert parse_frame(v1) == Hello(token="t", nick="n", last_id=3, epoch="e")
    for bad in ('{"type": "hello", "jwt": 5}', '{"type": "hello", "jwt": "' + "x" * 9000 + '"}'):
        with pytest.raises(FrameError) as caught:
            parse_frame(bad)
        assert caught.value.code == "bad_request"
