from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

from user_svc.models import Role


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='LoginThrottle',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=300)),
                ('window_started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField()),
            ],
            options={'table': 'login_throttle', 'app': 'user_svc', 'pk_attr': 'key', 'table_description': 'Sign-in attempts counted per key (an account or a client address) in a fixed window.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=255)),
                ('first_name', fields.CharField(max_length=100)),
                ('last_name', fields.CharField(max_length=100)),
                ('phone', fields.CharField(null=True, max_length=32)),
                ('role', fields.CharEnumField(default=Role.USER, description='USER: user\nADMIN: admin', enum_type=Role, max_length=16)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users', 'app': 'user_svc', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Address',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('user_svc.User', source_field='user_id', db_constraint=True, to_field='id', related_name='addresses', on_delete=OnDelete.CASCADE)),
                ('line1', fields.CharField(max_length=200)),
                ('line2', fields.CharField(null=True, max_length=200)),
                ('city', fields.CharField(max_length=100)),
                ('state', fields.CharField(max_length=100)),
                ('postal_code', fields.CharField(max_length=20)),
                ('country', fields.CharField(max_length=100)),
                ('is_default', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'addresses', 'app': 'user_svc', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RefreshToken',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('family_id', fields.UUIDField(db_index=True)),
                ('user', fields.ForeignKeyField('user_svc.User', source_field='user_id', db_constraint=True, to_field='id', related_name='refresh_tokens', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'refresh_tokens', 'app': 'user_svc', 'pk_attr': 'id', 'table_description': 'One issued refresh token. Refreshing uses it up and issues the next one of the same family.'},
            bases=['Model'],
        ),
    ]
