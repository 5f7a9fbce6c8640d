"""Logins vouched for by the deployment's backend: JSON Web Tokens, checked
without I/O.

A ``hello`` may carry ``jwt`` in place of ``token``. The key is the server's
setting, and so is the one algorithm accepted: HS256 for a shared secret,
RS256 for an RSA public key, ES256 for an EC P-256 one. The token's own
``alg`` header never chooses; a token of any other algorithm (``none``, or
HS256 "signed" with the public key's PEM as its secret) is refused like a
bad signature. PyJWT checks the signature, ``exp`` (required), ``nbf``,
``aud`` and ``iss`` (when set); this module reads what the chat needs of the
claims: ``sub``, ``name`` and ``roles``. Every refusal is a
:class:`~quartchat.errors.CloseConnection` with 4003, like an unknown token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .errors import UNKNOWN_TOKEN, CloseConnection
from .frame_fields import is_scalar_text

#: Seconds of clock difference between the backend and this server that
#: ``exp`` and ``nbf`` forgive.
LEEWAY = 5.0
#: The longest ``sub`` kept: an account id, not a document.
MAX_SUBJECT = 255
#: Bytes an HS256 secret must have at least (RFC 7518: the hash's size).
MIN_SECRET_BYTES = 32
#: Bits an RSA key must have at least.
MIN_RSA_BITS = 2048

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its user."""

    #: The account's id at the deployment: one quartchat user per subject.
    subject: str
    #: The nick wanted, as given (cleaned by the nick rules later), or None.
    name: str | None
    #: ``roles`` holds ``"admin"``.
    admin: bool


def read_public_key(path: Path) -> tuple[str, PublicKey]:
    """The algorithm a PEM public key pins, and the key; ``ValueError`` saying
    why the file cannot be used."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits: it needs {MIN_RSA_BITS} or more")
        return "RS256", key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", key
    raise ValueError("must be an RSA public key (RS256) or an EC P-256 one (ES256)")


def check_secret(secret: str) -> str:
    """``secret`` if it is long enough for HS256; ``ValueError`` if not."""
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (256 bits) for HS256")
    return secret


class JwtVerifier:
    """Checks tokens against one key with its one algorithm."""

    __slots__ = ("_audience", "_issuer", "_key", "algorithm")

    def __init__(
        self,
        algorithm: str,
        key: str | PublicKey,
        *,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self.algorithm = algorithm
        self._key = key
        self._audience = audience
        self._issuer = issuer

    @classmethod
    def configured(
        cls,
        secret: str | None,
        public_key: Path | None,
        *,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> JwtVerifier | None:
        """The verifier the settings describe, or None when logins by JWT are
        off (neither a secret nor a key); ``ValueError`` for a bad key, or both."""
        if secret is not None and public_key is not None:
            raise ValueError("a JWT secret and a JWT public key are both set: set one")
        if secret is not None:
            return cls("HS256", check_secret(secret), audience=audience, issuer=issuer)
        if public_key is not None:
            algorithm, key = read_public_key(public_key)
            return cls(algorithm, key, audience=audience, issuer=issuer)
        return None

    def verify(self, token: str) -> Claims:
        """The claims of a good token; 4003 for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise refused(str(exc) or type(exc).__name__) from None
        return read_claims(claims)


def read_claims(claims: dict[str, Any]) -> Claims:
    """The chat's claims of a verified token; 4003 when one is mistyped."""
    subject = claims.get("sub")
    if (
        not isinstance(subject, str)
        or not 0 < len(subject) <= MAX_SUBJECT
        or not is_scalar_text(subject)
        or "\x00" in subject
    ):
        raise refused(f"'sub' must be 1-{MAX_SUBJECT} characters")
    name = claims.get("name")
    if name is not None and not isinstance(name, str):
        raise refused("'name' must be a string")
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise refused("'roles' must be a list of strings")
    return Claims(subject, name, "admin" in roles)


def refused(why: str) -> CloseConnection:
    """The close for a login that is not accepted."""
    return CloseConnection(UNKNOWN_TOKEN, f"jwt refused: {why}"[:120])
