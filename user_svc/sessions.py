"""Sign-in: login throttling, access and refresh tokens, refresh-token rotation with reuse detection."""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.timezone import now

from common.errors import TooManyRequests, Unauthorized
from common.retention import Purge
from common.tokens import InvalidToken, RefreshClaims, TokenIssuer
from user_svc.models import RefreshToken, User
from user_svc.passwords import hash_password, needs_rehash, verify_password
from user_svc.settings import UserSettings

DB = "user_svc"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str

    def view(self) -> dict[str, str]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token, "token_type": "bearer"}


def login_throttle_purge(window_seconds: int) -> Purge:
    """Counters whose window has ended (common/retention.py): the next attempt would start them again anyway."""
    return Purge(
        "login_throttle",
        "DELETE FROM login_throttle WHERE ctid IN"
        " (SELECT ctid FROM login_throttle WHERE window_started_at < now() - $1::interval LIMIT $2)",
        timedelta(seconds=window_seconds),
    )


class LoginThrottle:
    """Fixed-window counters in the database, so every instance of the service sees the same counts."""

    def __init__(self, settings: UserSettings) -> None:
        self.window = settings.login_window_seconds
        self.max_failures_per_account = settings.login_max_failures_per_account
        self.max_attempts_per_client = settings.login_max_attempts_per_client

    async def admit(self, email: str, client: str) -> None:
        """Count this attempt for the client; 429 if the client or the account is over its limit."""
        attempts, retry_after = await self._count(f"client:{client}")
        if attempts > self.max_attempts_per_client:
            raise TooManyRequests("Too many sign-in attempts from this client", retry_after)
        failures, retry_after = await self._peek(f"account:{email}")
        if failures >= self.max_failures_per_account:
            raise TooManyRequests("Too many failed sign-in attempts for this account", retry_after)

    async def record_failure(self, email: str) -> None:
        await self._count(f"account:{email}")

    async def record_success(self, email: str) -> None:
        await self._connection().execute_query("DELETE FROM login_throttle WHERE key = $1", [f"account:{email}"])

    async def _count(self, key: str) -> tuple[int, int]:
        rows = await self._connection().execute_query_dict(
            """
            INSERT INTO login_throttle AS t (key, window_started_at, attempts) VALUES ($1, now(), 1)
            ON CONFLICT (key) DO UPDATE SET
                attempts = CASE WHEN t.window_started_at <= now() - make_interval(secs => $2)
                                THEN 1 ELSE t.attempts + 1 END,
                window_started_at = CASE WHEN t.window_started_at <= now() - make_interval(secs => $2)
                                         THEN now() ELSE t.window_started_at END
            RETURNING attempts,
                      ceil(extract(epoch FROM t.window_started_at + make_interval(secs => $2) - now()))::int
                      AS retry_after
            """,
            [key, self.window],
        )
        return rows[0]["attempts"], max(rows[0]["retry_after"], 1)

    async def _peek(self, key: str) -> tuple[int, int]:
        rows = await self._connection().execute_query_dict(
            """
            SELECT attempts,
                   ceil(extract(epoch FROM window_started_at + make_interval(secs => $2) - now()))::int
                   AS retry_after
            FROM login_throttle WHERE key = $1 AND window_started_at > now() - make_interval(secs => $2)
            """,
            [key, self.window],
        )
        return (rows[0]["attempts"], max(rows[0]["retry_after"], 1)) if rows else (0, 0)

    @staticmethod
    def _connection() -> BaseDBAsyncClient:
        return connections.get(DB)


class Sessions:
    def __init__(self, issuer: TokenIssuer, throttle: LoginThrottle) -> None:
        self.issuer = issuer
        self.throttle = throttle
        self.verifier = issuer.verifier()

    async def login(self, email: str, password: str, client: str) -> TokenPair:
        """A new token pair; the same 401 whether the email is unknown or the password wrong."""
        email = email.strip().lower()
        await self.throttle.admit(email, client)
        user = await User.get_or_none(email=email)
        password_ok = await verify_password(user.password_hash if user else None, password)
        if user is None or not password_ok or not user.is_active:
            await self.throttle.record_failure(email)
            raise Unauthorized("Incorrect email or password")
        await self.throttle.record_success(email)
        if needs_rehash(user.password_hash):
            user.password_hash = await hash_password(password)
            await user.save(update_fields=["password_hash"])
        return await self._issue(user, family_id=uuid.uuid4())

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Use up the refresh token and issue the next pair. A token used twice revokes its whole family:
        one of the two callers holds a stolen copy."""
        claims = await self._refresh_claims(refresh_token)
        used = await RefreshToken.filter(
            id=claims.token_id, used_at=None, revoked_at=None, expires_at__gt=now()
        ).update(used_at=now())
        if not used:
            await self._revoke_family(claims.family_id)
            raise Unauthorized("This refresh token was already used or has been revoked")
        user = await User.get_or_none(id=claims.user_id)
        if user is None or not user.is_active:
            raise Unauthorized("This account is no longer active")
        return await self._issue(user, family_id=claims.family_id)

    async def logout(self, refresh_token: str) -> None:
        claims = await self._refresh_claims(refresh_token)
        await self._revoke_family(claims.family_id)

    async def _refresh_claims(self, refresh_token: str) -> RefreshClaims:
        try:
            return await self.verifier.refresh_claims(refresh_token)
        except InvalidToken as error:
            raise Unauthorized(str(error)) from None

    async def _issue(self, user: User, family_id: uuid.UUID) -> TokenPair:
        token_id = uuid.uuid4()
        await RefreshToken.create(
            id=token_id, family_id=family_id, user_id=user.id, expires_at=now() + self.issuer.refresh_ttl
        )
        return TokenPair(
            access_token=self.issuer.access_token(user.id, user.role.value),
            refresh_token=self.issuer.refresh_token(user.id, token_id, family_id),
        )

    @staticmethod
    async def _revoke_family(family_id: uuid.UUID) -> None:
        await RefreshToken.filter(family_id=family_id, revoked_at=None).update(revoked_at=now())


async def revoke_all_refresh_tokens(user_id: int, connection: BaseDBAsyncClient) -> None:
    await RefreshToken.filter(user_id=user_id, revoked_at=None).using_db(connection).update(revoked_at=now())


def token_issuer(settings: UserSettings) -> TokenIssuer:
    return TokenIssuer(
        settings.private_key_pem(),
        access_ttl=timedelta(minutes=settings.access_token_minutes),
        refresh_ttl=timedelta(days=settings.refresh_token_days),
    )
