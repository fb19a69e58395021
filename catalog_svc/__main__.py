from catalog_svc.app import create_catalog_app
from catalog_svc.settings import CatalogSettings
from common.service import run

settings = CatalogSettings()
run(create_catalog_app(settings), settings)
