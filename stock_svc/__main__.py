from common.service import run
from stock_svc.app import create_stock_app
from stock_svc.settings import StockSettings

settings = StockSettings()
run(create_stock_app(settings), settings)
