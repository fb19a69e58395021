"""Unit tests of token signing and verification (pure logic, no servers)."""

import uuid
from datetime import timedelta

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from common.tokens import InvalidToken, StaticKeys, TokenIssuer, TokenVerifier, generate_private_key_pem


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer(generate_private_key_pem(), timedelta(minutes=5), timedelta(days=1))


async def test_access_token_round_trip(issuer):
    principal = await issuer.verifier().principal(issuer.access_token(7, "admin"))
    assert (principal.user_id, principal.role, principal.is_admin) == (7, "admin", True)


async def test_refresh_claims_round_trip(issuer):
    token_id, family_id = uuid.uuid4(), uuid.uuid4()
    claims = await issuer.verifier().refresh_claims(issuer.refresh_token(3, token_id, family_id))
    assert (claims.user_id, claims.token_id, claims.family_id) == (3, token_id, family_id)


async def test_expired_token_is_rejected():
    short_lived = TokenIssuer(generate_private_key_pem(), timedelta(seconds=-1), timedelta(days=1))
    with pytest.raises(InvalidToken, match="expired"):
        await short_lived.verifier().principal(short_lived.access_token(1, "user"))


async def test_token_of_another_key_is_rejected(issuer):
    stranger = TokenIssuer(generate_private_key_pem(), timedelta(minutes=5), timedelta(days=1))
    with pytest.raises(InvalidToken, match="unknown key"):
        await issuer.verifier().principal(stranger.access_token(1, "admin"))


async def test_same_kid_but_other_signature_is_rejected(issuer):
    stranger = TokenIssuer(generate_private_key_pem(), timedelta(minutes=5), timedelta(days=1))
    # The stranger's kid mapped to our public key: the signature check must fail.
    verifier = TokenVerifier(StaticKeys({stranger.jwk["kid"]: RSAAlgorithm.from_jwk(issuer.jwk)}))
    with pytest.raises(InvalidToken):
        await verifier.principal(stranger.access_token(1, "admin"))


async def test_unsigned_and_hs256_tokens_are_rejected(issuer):
    claims = {"sub": "1", "role": "admin", "typ": "access"}
    for token in (jwt.encode(claims, None, algorithm="none"), jwt.encode(claims, "secret" * 6, algorithm="HS256")):
        with pytest.raises(InvalidToken):
            await issuer.verifier().principal(token)


async def test_token_types_are_not_interchangeable(issuer):
    verifier = issuer.verifier()
    with pytest.raises(InvalidToken, match="not an access token"):
        await verifier.principal(issuer.refresh_token(1, uuid.uuid4(), uuid.uuid4()))
    with pytest.raises(InvalidToken, match="not a refresh token"):
        await verifier.refresh_claims(issuer.access_token(1, "user"))


def test_kid_is_stable_for_the_same_key():
    pem = generate_private_key_pem()
    first = TokenIssuer(pem, timedelta(minutes=5), timedelta(days=1))
    second = TokenIssuer(pem, timedelta(minutes=1), timedelta(days=2))
    assert first.jwk["kid"] == second.jwk["kid"]
    assert first.jwks == {"keys": [first.jwk]}
