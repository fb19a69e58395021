from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from stock_svc.models import ChangeType, ReservationStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='HandledCommand',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.CharField(max_length=100)),
                ('command', fields.CharField(max_length=32)),
                ('reply_type', fields.CharField(max_length=32)),
                ('reply', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('handled_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'handled_commands', 'app': 'stock_svc', 'unique_together': (('order_id', 'command'),), 'pk_attr': 'id', 'table_description': 'A saga command applied for an order, with its reply: the same command again gets this reply, no effect.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InventoryItem',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('product_id', fields.CharField(unique=True, max_length=100)),
                ('available_quantity', fields.IntField()),
                ('reserved_quantity', fields.IntField(default=0)),
                ('reorder_threshold', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('retired_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'inventory_items', 'app': 'stock_svc', 'pk_attr': 'id', 'table_description': 'The stock of one product: units on sale (available) and units held for orders (reserved).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Reservation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.CharField(max_length=100)),
                ('item', fields.ForeignKeyField('stock_svc.InventoryItem', source_field='item_id', db_constraint=True, to_field='id', related_name='reservations', on_delete=OnDelete.CASCADE)),
                ('quantity', fields.IntField()),
                ('status', fields.CharEnumField(default=ReservationStatus.HELD, description='HELD: held\nRELEASED: released\nCONFIRMED: confirmed', enum_type=ReservationStatus, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'reservations', 'app': 'stock_svc', 'unique_together': (('order_id', 'item_id'),), 'pk_attr': 'id', 'table_description': 'The units of one product held for one order.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StockHistory',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('item', fields.ForeignKeyField('stock_svc.InventoryItem', source_field='item_id', db_constraint=True, to_field='id', related_name='history', on_delete=OnDelete.CASCADE)),
                ('type', fields.CharEnumField(description='CREATED: created\nUPDATED: updated\nRESERVED: reserved\nRELEASED: released\nCONFIRMED: confirmed\nADJUSTED: adjusted', enum_type=ChangeType, max_length=16)),
                ('change', fields.IntField()),
                ('available_before', fields.IntField()),
                ('available_after', fields.IntField()),
                ('reserved_before', fields.IntField()),
                ('reserved_after', fields.IntField()),
                ('reference', fields.CharField(null=True, max_length=100)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'stock_history', 'app': 'stock_svc', 'indexes': [Index(fields=['item_id', 'id'])], 'pk_attr': 'id', 'table_description': "One change of an item's quantities, with the quantities before and after it."},
            bases=['Model'],
        ),
    ]
