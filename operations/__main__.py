"""`python -m operations` serves the operations API (operations/routes.py)."""

from common.service import run
from operations.app import create_operations_app
from operations.settings import OperationsSettings

settings = OperationsSettings()
run(create_operations_app(settings), settings)
