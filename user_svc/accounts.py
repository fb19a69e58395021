"""Use cases on user accounts: registration, profile, password, role, addresses, the first admin."""

import logging

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from common.errors import Conflict, NotFound, Unauthorized
from common.messages import USER_CREATED
from common.outbox import Event, write_events
from common.topics import USER_EVENTS
from user_svc.models import Address, Role, User
from user_svc.passwords import hash_password, verify_password
from user_svc.schemas import AddressInput, AddressUpdate, ProfileUpdate, Registration
from user_svc.sessions import revoke_all_refresh_tokens

log = logging.getLogger(__name__)

DB = "user_svc"


def user_created(user: User) -> Event:
    return Event(
        topic=USER_EVENTS,
        event_type=USER_CREATED,
        aggregate_type="user",
        aggregate_id=str(user.id),
        payload={
            "id": user.id,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "role": user.role.value,
            "created_at": user.created_at.isoformat(),
        },
    )


async def register(registration: Registration, role: Role = Role.USER) -> User:
    """Create the user and its `user.created` event in one transaction; 409 if the email is taken."""
    password_hash = await hash_password(registration.password)
    try:
        async with in_transaction(DB) as connection:
            user = await User.create(
                email=registration.email,
                password_hash=password_hash,
                first_name=registration.first_name,
                last_name=registration.last_name,
                phone=registration.phone,
                role=role,
                using_db=connection,
            )
            await write_events(connection, [user_created(user)])
    except IntegrityError:
        raise Conflict("A user with this email already exists", field="email") from None
    return user


async def get_user(user_id: int) -> User:
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


async def active_user(user_id: int) -> User:
    """The signed-in user; 401 if the account was deleted or deactivated since the token was issued."""
    user = await User.get_or_none(id=user_id)
    if user is None or not user.is_active:
        raise Unauthorized("This account is no longer active")
    return user


async def addresses_of(user: User) -> list[Address]:
    return await Address.filter(user_id=user.id).order_by("id")


async def update_profile(user: User, update: ProfileUpdate) -> User:
    changes = update.changes()
    if not changes:
        return user
    user.update_from_dict(changes)
    try:
        await user.save(update_fields=[*changes, "updated_at"])
    except IntegrityError:
        raise Conflict("A user with this email already exists", field="email") from None
    return user


async def change_password(user: User, current_password: str, new_password: str) -> None:
    """Replace the password and sign the user out everywhere (every refresh token is revoked)."""
    if not await verify_password(user.password_hash, current_password):
        raise Unauthorized("The current password is not correct", field="current_password")
    user.password_hash = await hash_password(new_password)
    async with in_transaction(DB) as connection:
        await user.save(update_fields=["password_hash", "updated_at"], using_db=connection)
        await revoke_all_refresh_tokens(user.id, connection)


async def change_role(user_id: int, role: Role) -> User:
    user = await get_user(user_id)
    if user.role != role:
        user.role = role
        await user.save(update_fields=["role", "updated_at"])
    return user


async def add_address(user: User, data: AddressInput) -> Address:
    async with in_transaction(DB) as connection:
        if data.is_default:
            await _clear_default_address(user, connection)
        try:
            return await Address.create(user_id=user.id, **data.model_dump(), using_db=connection)
        except IntegrityError:
            raise Conflict("Another default address was set at the same time; try again") from None


async def update_address(user: User, address_id: int, update: AddressUpdate) -> Address:
    changes = update.changes()
    async with in_transaction(DB) as connection:
        address = await Address.filter(id=address_id, user_id=user.id).using_db(connection).first()
        if address is None:
            raise NotFound(f"Address {address_id} not found")
        if changes.get("is_default"):
            await _clear_default_address(user, connection, keep=address.id)
        if changes:
            address.update_from_dict(changes)
            try:
                await address.save(update_fields=list(changes), using_db=connection)
            except IntegrityError:
                raise Conflict("Another default address was set at the same time; try again") from None
    return address


async def delete_address(user: User, address_id: int) -> None:
    deleted = await Address.filter(id=address_id, user_id=user.id).delete()
    if not deleted:
        raise NotFound(f"Address {address_id} not found")


async def _clear_default_address(user: User, connection: BaseDBAsyncClient, keep: int | None = None) -> None:
    query = Address.filter(user_id=user.id, is_default=True)
    if keep is not None:
        query = query.exclude(id=keep)
    await query.using_db(connection).update(is_default=False)


async def ensure_admin(email: str, password: str) -> None:
    """Create the configured admin, or give the existing account the admin role and this password."""
    email = email.strip().lower()
    user = await User.get_or_none(email=email)
    if user is None:
        registration = Registration(email=email, password=password, first_name="Admin", last_name="Admin")
        try:
            await register(registration, role=Role.ADMIN)
            log.info("created the admin account %s", email)
            return
        except Conflict:  # another instance created it a moment ago
            user = await User.get(email=email)
    changed: list[str] = []
    if user.role != Role.ADMIN:
        user.role, changed = Role.ADMIN, [*changed, "role"]
    if not user.is_active:
        user.is_active, changed = True, [*changed, "is_active"]
    if not await verify_password(user.password_hash, password):
        user.password_hash, changed = await hash_password(password), [*changed, "password_hash"]
    if changed:
        await user.save(update_fields=[*changed, "updated_at"])
        log.info("updated the admin account %s (%s)", email, ", ".join(changed))
