from common.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    # A replica set (a single-node one will do): product changes and their events share a transaction.
    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    catalog_database: str = "catalog"
