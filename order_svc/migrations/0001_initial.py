from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from order_svc.models import OrderStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Order',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user_id', fields.IntField()),
                ('status', fields.CharEnumField(default=OrderStatus.PENDING, description='PENDING: pending\nPAID: paid\nSHIPPED: shipped\nDELIVERED: delivered\nCANCELLED: cancelled\nREJECTED: rejected', enum_type=OrderStatus, max_length=16)),
                ('total_price', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('shipping_address', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status_reason', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'orders', 'app': 'order_svc', 'indexes': [Index(fields=['user_id', 'created_at'])], 'pk_attr': 'id', 'table_description': "One customer's order. Its items and prices never change after it is placed; only its status does."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OrderItem',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('order_svc.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='items', on_delete=OnDelete.CASCADE)),
                ('product_id', fields.CharField(max_length=100)),
                ('quantity', fields.IntField()),
                ('price', fields.DecimalField(max_digits=12, decimal_places=2)),
            ],
            options={'table': 'order_items', 'app': 'order_svc', 'unique_together': (('order_id', 'product_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProductPrice',
            fields=[
                ('product_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=100)),
                ('name', fields.CharField(max_length=200)),
                ('price', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('deleted', fields.BooleanField(default=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'product_prices', 'app': 'order_svc', 'pk_attr': 'product_id', 'table_description': "The read model of the catalog's prices, fed by product-topic: what an order may be placed at."},
            bases=['Model'],
        ),
    ]
