"""What the user endpoints accept (pydantic models) and how they present users and addresses."""

import re
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints

from common.validation import PartialUpdate, Schema
from user_svc.models import Address, Role, User

_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{2,30}$")


def _password_policy(password: str) -> str:
    if not any(character.isdigit() for character in password):
        raise ValueError("must contain at least one digit")
    return password


def _phone_format(phone: str) -> str:
    if not _PHONE.match(phone):
        raise ValueError("must be a phone number: digits, spaces and + ( ) - . /")
    return phone


Password = Annotated[str, Field(min_length=8, max_length=128), AfterValidator(_password_policy)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(_phone_format)]
Email = Annotated[EmailStr, StringConstraints(max_length=254), AfterValidator(str.lower)]


class Registration(Schema):
    email: Email
    password: Password
    first_name: Name
    last_name: Name
    phone: Phone | None = None


class Credentials(Schema):
    """The login form (OAuth2 password style: the email goes in `username`)."""

    model_config = Schema.model_config | {"extra": "ignore"}  # OAuth2 clients add grant_type, scope...

    username: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RefreshRequest(Schema):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class ProfileUpdate(PartialUpdate):
    nullable = frozenset({"phone"})

    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    phone: Phone | None = None


class PasswordChange(Schema):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    new_password: Password


class RoleChange(Schema):
    role: Role


class AddressInput(Schema):
    line1: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    line2: Annotated[str, StringConstraints(max_length=200)] | None = None
    city: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    state: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    country: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    is_default: bool = False


class AddressUpdate(PartialUpdate):
    nullable = frozenset({"line2"})

    line1: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    line2: Annotated[str, StringConstraints(max_length=200)] | None = None
    city: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    state: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    country: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    is_default: bool | None = None


def address_view(address: Address) -> dict:
    return {
        "id": address.id,
        "line1": address.line1,
        "line2": address.line2,
        "city": address.city,
        "state": address.state,
        "postal_code": address.postal_code,
        "country": address.country,
        "is_default": address.is_default,
    }


def user_view(user: User, addresses: list[Address]) -> dict:
    return {
        "id": user.id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "phone": user.phone,
        "is_active": user.is_active,
        "created_at": user.created_at.isoformat(),
        "addresses": [address_view(address) for address in addresses],
        "role": user.role.value,
    }
