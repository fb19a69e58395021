"""RS256 JSON Web Tokens: user_svc signs them, every service verifies them with the public key (JWKS).

Keys are identified by `kid`, the RFC 7638 thumbprint of the public key, so a verifier that meets an unknown
`kid` knows to fetch the key set again (key rotation) without calling user_svc on every request.
"""

import asyncio
import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "outbox-shop"
AUDIENCE = "outbox-shop-api"
ALGORITHM = "RS256"


class InvalidToken(Exception):
    """The token is malformed, expired, of the wrong type, or signed by an unknown key."""


@dataclass(frozen=True)
class Principal:
    """Who made the request, as the access token says."""

    user_id: int
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class RefreshClaims:
    user_id: int
    token_id: uuid.UUID
    family_id: uuid.UUID


def generate_private_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ensure_signing_key(path: Path) -> Path:
    """The JWT signing key, generated once: tokens issued before a restart stay valid after it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(generate_private_key_pem())
    return path


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public key as a JWK with its thumbprint as `kid`."""
    jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    return {"kty": "RSA", "use": "sig", "alg": ALGORITHM, "kid": kid, "n": jwk["n"], "e": jwk["e"]}


class TokenIssuer:
    """Signs access and refresh tokens with one private key and publishes its public half as a JWKS."""

    def __init__(self, private_key_pem: bytes, access_ttl: timedelta, refresh_ttl: timedelta) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the JWT signing key must be an RSA private key")
        self._private_key = key
        self.jwk = public_jwk(key.public_key())
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    @property
    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.jwk]}

    def verifier(self) -> "TokenVerifier":
        return TokenVerifier(StaticKeys({self.jwk["kid"]: self._private_key.public_key()}))

    def access_token(self, user_id: int, role: str) -> str:
        return self._sign({"sub": str(user_id), "role": role, "typ": "access"}, self.access_ttl)

    def refresh_token(self, user_id: int, token_id: uuid.UUID, family_id: uuid.UUID) -> str:
        claims = {"sub": str(user_id), "typ": "refresh", "jti": str(token_id), "fam": str(family_id)}
        return self._sign(claims, self.refresh_ttl)

    def _sign(self, claims: dict[str, Any], ttl: timedelta) -> str:
        now = datetime.now(UTC)
        claims = {**claims, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + ttl}
        claims.setdefault("jti", str(uuid.uuid4()))
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.jwk["kid"]})


class StaticKeys:
    """Public keys known up front (user_svc verifies with its own key)."""

    def __init__(self, keys: dict[str, rsa.RSAPublicKey]) -> None:
        self._keys = keys

    async def get(self, kid: str) -> rsa.RSAPublicKey | None:
        return self._keys.get(kid)


class JwksKeys:
    """Public keys fetched from a JWKS URL, fetched again (at most every `refetch_interval` s) on an unknown kid."""

    def __init__(self, url: str, refetch_interval: float = 30.0) -> None:
        self._url = url
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._next_fetch = float("-inf")
        self._refetch_interval = refetch_interval
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> rsa.RSAPublicKey | None:
        if kid not in self._keys:
            async with self._lock:
                if kid not in self._keys and time.monotonic() >= self._next_fetch:
                    await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        # A failed fetch (user_svc still starting) may be tried again a second later; a successful one only after
        # the refetch interval, so that tokens with made-up kids cannot make every request fetch.
        self._next_fetch = time.monotonic() + 1.0
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self._url)
            response.raise_for_status()
        keys = {}
        for jwk in response.json()["keys"]:
            key = RSAAlgorithm.from_jwk(jwk)
            if isinstance(key, rsa.RSAPublicKey):
                keys[jwk["kid"]] = key
        self._keys = keys
        self._next_fetch = time.monotonic() + self._refetch_interval


class TokenVerifier:
    """Verifies access tokens; a verified token is remembered until it expires (RS256 costs ~170 us)."""

    max_cached = 10_000

    def __init__(self, keys: StaticKeys | JwksKeys) -> None:
        self._keys = keys
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def principal(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        claims = await self.claims(token, "access")
        principal = Principal(user_id=int(claims["sub"]), role=str(claims["role"]))
        self._remember(token, principal, float(claims["exp"]))
        return principal

    async def refresh_claims(self, token: str) -> RefreshClaims:
        claims = await self.claims(token, "refresh")
        try:
            return RefreshClaims(int(claims["sub"]), uuid.UUID(claims["jti"]), uuid.UUID(claims["fam"]))
        except (KeyError, ValueError):
            raise InvalidToken("malformed refresh token") from None

    async def claims(self, token: str, token_type: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = await self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise InvalidToken("token signed by an unknown key")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except (jwt.PyJWTError, httpx.HTTPError, ValueError) as error:
            raise InvalidToken(f"invalid token: {error}") from None
        if claims.get("typ") != token_type:
            raise InvalidToken(f"not an {token_type} token" if token_type == "access" else "not a refresh token")
        return claims

    def _remember(self, token: str, principal: Principal, expires_at: float) -> None:
        if len(self._verified) >= self.max_cached:
            now = time.time()
            self._verified = {t: entry for t, entry in self._verified.items() if entry[1] > now}
            if len(self._verified) >= self.max_cached:
                self._verified.clear()
        self._verified[token] = (principal, expires_at)
