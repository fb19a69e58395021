from common.service import run
from order_svc.app import create_order_app
from order_svc.settings import OrderSettings

settings = OrderSettings()
run(create_order_app(settings), settings)
