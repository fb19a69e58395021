from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure
from sanic import Sanic
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from catalog_svc.products import Catalog
from catalog_svc.routes.products import products
from catalog_svc.settings import CatalogSettings
from common.service import create_app
from common.tokens import TokenVerifier

NAME = "catalog_svc"


def create_catalog_app(settings: CatalogSettings, token_verifier: TokenVerifier | None = None) -> Sanic:
    """The catalog; tokens are verified with user_svc's published keys unless a verifier is given (tests)."""
    app = create_app(NAME, "Catalog service", settings, token_verifier)
    app.ctx.readiness_checks["database"] = lambda: app.ctx.catalog.reachable()

    @app.before_server_start
    async def open_catalog(app: Sanic) -> None:
        # The client binds to the running loop: create it inside it. Requests fail after 5 s without a server.
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        catalog = Catalog(client, client[settings.catalog_database])
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(ConnectionFailure),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            stop=stop_after_delay(30),
            reraise=True,
        ):
            with attempt:
                await catalog.ensure_indexes()  # waits for the server at start-up
        app.ctx.mongo_client = client
        app.ctx.catalog = catalog

    @app.after_server_stop
    async def close_catalog(app: Sanic) -> None:
        await app.ctx.mongo_client.close()

    app.blueprint(products)
    return app
