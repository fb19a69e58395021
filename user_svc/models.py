from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(Model):
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)  # stored lower-cased
    password_hash = fields.CharField(max_length=255)
    first_name = fields.CharField(max_length=100)
    last_name = fields.CharField(max_length=100)
    phone = fields.CharField(max_length=32, null=True)
    role = fields.CharEnumField(Role, max_length=16, default=Role.USER)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    addresses: fields.ReverseRelation["Address"]

    class Meta:
        table = "users"


class Address(Model):
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "user_svc.User", related_name="addresses", on_delete=fields.CASCADE
    )
    line1 = fields.CharField(max_length=200)
    line2 = fields.CharField(max_length=200, null=True)
    city = fields.CharField(max_length=100)
    state = fields.CharField(max_length=100)
    postal_code = fields.CharField(max_length=20)
    country = fields.CharField(max_length=100)
    # At most one default address per user: a partial unique index guards it (see migrations).
    is_default = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "addresses"


class RefreshToken(Model):
    """One issued refresh token. Refreshing uses it up and issues the next one of the same family."""

    id = fields.UUIDField(primary_key=True)
    family_id = fields.UUIDField(db_index=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "user_svc.User", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_tokens"


class LoginThrottle(Model):
    """Sign-in attempts counted per key (an account or a client address) in a fixed window."""

    key = fields.CharField(max_length=300, primary_key=True)
    window_started_at = fields.DatetimeField()
    attempts = fields.IntField()

    class Meta:
        table = "login_throttle"
