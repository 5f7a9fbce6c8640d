"""Logins vouched for by the deployment's backend, over a real socket: a
``hello`` with ``jwt`` (HS256, RS256, ES256), every token that must not log
anyone in (each closes with 4003 and stores nothing), guests turned off,
and one ``sub`` as one user on every worker and after a restart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chatclient import ChatClient
from conftest import Clients, RunningServer, StartServer
from quartchat.errors import UNKNOWN_TOKEN
from quartchat.protocol import Hello

SECRET = "a shared secret of the tests, 32+ bytes long"


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem_file(tmp_path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / "backend.pem"
    path.write_bytes(public_pem(key))
    return path


def claims(**extra: Any) -> dict[str, Any]:
    """A good token's claims for account ``acct-1``, good for a minute."""
    return {"sub": "acct-1", "exp": int(time.time()) + 60, **extra}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], sign: Any = None) -> str:
    """A token assembled by hand, for what PyJWT itself refuses to sign."""
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    signature = b"" if sign is None else sign(head.encode())
    return head + "." + b64(signature)


async def login(
    server: RunningServer, clients: Clients, token: str, **hello: Any
) -> tuple[ChatClient, dict[str, Any]]:
    """A client that sent a ``hello`` with ``jwt``, and the first frame back."""
    client = await clients.connect(server)
    await client.send(type="hello", jwt=token, last_id=None, epoch=None, **hello)
    return client, await client.recv()


async def refused(server: RunningServer, clients: Clients, token: str, **hello: Any) -> None:
    client = await clients.connect(server)
    await client.send(type="hello", jwt=token, last_id=None, epoch=None, **hello)
    assert await client.close_code() == UNKNOWN_TOKEN
    assert server.count("users") == 0


async def test_an_hs256_token_logs_in_with_its_name(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(jwt_secret=SECRET)
    client, welcome = await login(server, clients, hs256(claims(name="Alice")))
    assert welcome["type"] == "welcome"
    assert welcome["user"]["nick"] == "Alice"
    # Only a JWT logs this user in: a token would outlive the JWT's exp.
    assert welcome["token"] is None
    await client.send(type="send", client_offset="a", text="hi from the backend's user", to=None)
    assert (await client.expect("ack"))["id"] == 1


@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_rs256_and_es256_tokens_log_in(
    start_server: StartServer, clients: Clients, tmp_path: Path, kind: str
) -> None:
    key = rsa_key() if kind == "rsa" else ec_key()
    algorithm = "RS256" if kind == "rsa" else "ES256"
    server = await start_server(jwt_public_key=pem_file(tmp_path, key))
    _, welcome = await login(server, clients, jwt.encode(claims(name="bob"), key, algorithm))
    assert welcome["user"]["nick"] == "bob"


async def test_without_a_name_the_hello_nick_counts(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(jwt_secret=SECRET)
    _, welcome = await login(server, clients, hs256(claims()), nick="carol")
    assert welcome["user"]["nick"] == "carol"
    _, welcome = await login(server, clients, hs256(claims(sub="acct-2")))
    assert welcome["user"]["nick"].startswith("user-")


async def test_the_name_follows_the_nick_rules(start_server: StartServer, clients: Clients) -> None:
    """A look-alike of an online nick (Cyrillic a) is refused as taken, and
    a bad name as a bad nick; the login goes on with another nick."""
    server = await start_server(jwt_secret=SECRET)
    await clients.join(server, nick="alice")
    client, welcome = await login(server, clients, hs256(claims(name="\u0430lice")))
    assert welcome["type"] == "welcome"
    assert welcome["user"]["nick"] not in ("alice", "\u0430lice")
    assert (await client.expect("error"))["code"] == "nick_taken"
    client, welcome = await login(server, clients, hs256(claims(sub="acct-2", name="\x07")))
    assert welcome["type"] == "welcome"
    assert (await client.expect("error"))["code"] == "bad_nick"


def bad_tokens() -> dict[str, str]:
    now = int(time.time())
    return {
        "bad signature": hs256(claims(), "another secret, 32 bytes or longer"),
        "alg none": hand_made({"alg": "none", "typ": "JWT"}, claims()),
        "expired": hs256(claims(exp=now - 60)),
        "nbf in the future": hs256(claims(nbf=now + 60)),
        "no sub": hs256({"exp": now + 60}),
        "no exp": hs256({"sub": "acct-1"}),
        "sub not a string": hs256(claims(sub=17)),
        "roles not a list": hs256(claims(roles="admin")),
        "garbage": "garbage",
        "three garbage parts": "not.a.jwt",
        "empty": "",
    }


@pytest.mark.parametrize("case", sorted(bad_tokens()))
async def test_a_bad_token_closes_with_4003_and_stores_nothing(
    start_server: StartServer, clients: Clients, case: str
) -> None:
    server = await start_server(jwt_secret=SECRET)
    await refused(server, clients, bad_tokens()[case])


async def test_algorithm_confusion_closes_with_4003(
    start_server: StartServer, clients: Clients, tmp_path: Path
) -> None:
    """An HS256 token "signed" with the RS256 public key's PEM as the secret
    (anyone has the public key), and an ES256 token for an RSA key."""
    pem = public_pem(rsa_key())
    server = await start_server(jwt_public_key=pem_file(tmp_path, rsa_key()))

    def with_pem(head: bytes) -> bytes:
        return hmac.new(pem, head, hashlib.sha256).digest()

    await refused(server, clients, hand_made({"alg": "HS256", "typ": "JWT"}, claims(), with_pem))
    await refused(server, clients, jwt.encode(claims(), ec_key(), "ES256"))
    await refused(server, clients, hs256(claims()))


@pytest.mark.parametrize(
    ("setting", "claim"),
    [("jwt_audience", "aud"), ("jwt_issuer", "iss")],
)
async def test_a_wrong_or_missing_audience_or_issuer_closes_with_4003(
    start_server: StartServer, clients: Clients, setting: str, claim: str
) -> None:
    server = await start_server(jwt_secret=SECRET, **{setting: "chat.example"})
    await refused(server, clients, hs256(claims(**{claim: "other.example"})))
    await refused(server, clients, hs256(claims(**{claim: "chat.example.evil"})))
    await refused(server, clients, hs256(claims()))
    _, welcome = await login(server, clients, hs256(claims(**{claim: "chat.example"})))
    assert welcome["type"] == "welcome"


async def test_a_jwt_where_none_is_configured_closes_with_4003(
    server: RunningServer, clients: Clients
) -> None:
    await refused(server, clients, hs256(claims()))


async def test_a_hello_with_a_token_and_a_jwt_closes_with_4003(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(jwt_secret=SECRET)
    guest, _ = await clients.join(server, nick="guest")
    client = await clients.connect(server)
    token = guest.welcome["token"]
    await client.send(type="hello", token=token, jwt=hs256(claims()), last_id=None, epoch=None)
    assert await client.close_code() == UNKNOWN_TOKEN
    assert server.count("users") == 1


async def test_without_guests_only_a_jwt_logs_in(
    start_server: StartServer, clients: Clients
) -> None:
    server = await start_server(jwt_secret=SECRET, guests=False)
    client = await clients.connect(server)
    await client.send(type="hello", token=None, nick="guest", last_id=None, epoch=None)
    assert await client.close_code() == UNKNOWN_TOKEN
    assert server.count("users") == 0
    _, welcome = await login(server, clients, hs256(claims(name="member")))
    assert welcome["user"]["nick"] == "member"


async def test_one_sub_is_one_user_on_every_worker_and_at_once(
    start_server: StartServer, clients: Clients
) -> None:
    """Two first logins of one account at once (on the two workers, on
    Redis) make one user; later logins, from any worker, find it."""
    server = await start_server(jwt_secret=SECRET)
    welcomes: list[dict[str, Any]] = []

    async def one() -> None:
        welcomes.append((await login(server, clients, hs256(claims(name="dora"))))[1])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one)
        nursery.start_soon(one)
    for _ in server.workers:
        await one()
    assert len({w["user"]["id"] for w in welcomes}) == 1
    assert server.count("users") == 1


async def test_one_sub_is_the_same_user_after_a_restart(
    start_server: StartServer, clients: Clients, tmp_path: Path
) -> None:
    db_path = tmp_path / "kept.db"
    first = await start_server(jwt_secret=SECRET, db_path=db_path)
    client, welcome = await login(first, clients, hs256(claims(name="erin")))
    await client.aclose()
    await first.stop()
    again = await start_server(jwt_secret=SECRET, db_path=db_path)
    _, back = await login(again, clients, hs256(claims(name="erin")))
    assert back["user"] == welcome["user"]


async def test_subject_users_are_never_pruned(start_server: StartServer, clients: Clients) -> None:
    server = await start_server(jwt_secret=SECRET)
    client, welcome = await login(server, clients, hs256(claims(name="silent")))
    await client.aclose()
    assert await server.hub.identity_desk._identities.prune_silent_users(2**62, []) == 0
    _, back = await login(server, clients, hs256(claims()))
    assert back["user"] == welcome["user"]


@pytest.mark.parametrize(
    ("roles", "admin"),
    [(None, False), (["admin"], True), (["member", "admin"], True), (["moderator"], False)],
)
async def test_the_admin_role_is_seen(
    start_server: StartServer, roles: list[str] | None, admin: bool
) -> None:
    server = await start_server(jwt_secret=SECRET)
    extra = {} if roles is None else {"roles": roles}
    hello = Hello(token=None, nick=None, last_id=None, epoch=None, jwt=hs256(claims(**extra)))
    identity = await server.hub.identify(hello, None)
    assert identity.admin is admin
    assert identity.token is None
