from common.service import run
from saga.app import create_saga_app
from saga.settings import SagaSettings

settings = SagaSettings()
run(create_saga_app(settings), settings)
