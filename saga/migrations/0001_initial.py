from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from saga.models import SagaState, StepName, StepState
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Saga',
            fields=[
                ('order_id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user_id', fields.IntField()),
                ('state', fields.CharEnumField(description='STARTED: STARTED\nRESERVING: RESERVING\nAWAITING_PAYMENT: AWAITING_PAYMENT\nCONFIRMING: CONFIRMING\nCOMPLETED: COMPLETED\nRELEASING: RELEASING\nREJECTED: REJECTED\nCANCELLED: CANCELLED\nEXPIRED: EXPIRED\nFAILED: FAILED', enum_type=SagaState, max_length=20)),
                ('items', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('paid', fields.BooleanField(default=False)),
                ('release_outcome', fields.CharEnumField(null=True, description='STARTED: STARTED\nRESERVING: RESERVING\nAWAITING_PAYMENT: AWAITING_PAYMENT\nCONFIRMING: CONFIRMING\nCOMPLETED: COMPLETED\nRELEASING: RELEASING\nREJECTED: REJECTED\nCANCELLED: CANCELLED\nEXPIRED: EXPIRED\nFAILED: FAILED', enum_type=SagaState, max_length=20)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('failed_in', fields.CharEnumField(null=True, description='STARTED: STARTED\nRESERVING: RESERVING\nAWAITING_PAYMENT: AWAITING_PAYMENT\nCONFIRMING: CONFIRMING\nCOMPLETED: COMPLETED\nRELEASING: RELEASING\nREJECTED: REJECTED\nCANCELLED: CANCELLED\nEXPIRED: EXPIRED\nFAILED: FAILED', enum_type=SagaState, max_length=20)),
                ('correlation_id', fields.CharField(null=True, max_length=100)),
                ('payment_deadline', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('due_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'sagas', 'app': 'saga', 'pk_attr': 'order_id', 'table_description': "One order's saga. Its row is locked (SELECT ... FOR UPDATE) by whatever moves it."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SagaStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('saga', fields.ForeignKeyField('saga.Saga', source_field='saga_id', db_index=True, db_constraint=True, to_field='order_id', related_name='steps', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharEnumField(description='RESERVE: reserve\nAWAIT_PAYMENT: await_payment\nCONFIRM: confirm\nRELEASE: release', enum_type=StepName, max_length=20)),
                ('state', fields.CharEnumField(default=StepState.RUNNING, description='RUNNING: running\nSUCCEEDED: succeeded\nFAILED: failed\nABANDONED: abandoned', enum_type=StepState, max_length=20)),
                ('attempts', fields.IntField(default=0)),
                ('command_id', fields.UUIDField(null=True)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'saga_steps', 'app': 'saga', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
