from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json
from sanic_ext import openapi

from catalog_svc.products import Catalog
from catalog_svc.schemas import ProductInput, ProductQuery, ProductUpdate
from common.auth import require_role
from common.validation import json_body, openapi_body, query_args

products = Blueprint("products", url_prefix="/api/v1/products")


def _catalog(request: Request) -> Catalog:
    return request.app.ctx.catalog


@products.post("/", strict_slashes=False)
@openapi.body(openapi_body(ProductInput))
@openapi.response(201, description="The new product")
@openapi.secured("bearer")
@require_role("admin")
async def create_product(request: Request) -> HTTPResponse:
    product = await _catalog(request).create(json_body(request, ProductInput))
    return json(product, status=201)


@products.get("/", strict_slashes=False)
@openapi.parameter("category", str)
@openapi.parameter("min_price", float)
@openapi.parameter("max_price", float)
@openapi.parameter("skip", int)
@openapi.parameter("limit", int, description="1 to 100, 50 by default")
async def list_products(request: Request) -> HTTPResponse:
    """Products oldest first, filtered by category and an inclusive price range."""
    return json(await _catalog(request).search(query_args(request, ProductQuery)))


@products.get("/categories")
async def list_categories(request: Request) -> HTTPResponse:
    """Every category that has a product, sorted."""
    return json(await _catalog(request).categories())


@products.get("/<product_id:str>")
async def get_product(request: Request, product_id: str) -> HTTPResponse:
    return json(await _catalog(request).get(product_id))


@products.put("/<product_id:str>")
@openapi.body(openapi_body(ProductUpdate))
@openapi.secured("bearer")
@require_role("admin")
async def update_product(request: Request, product_id: str) -> HTTPResponse:
    """Changes the fields the body names; the others keep their values."""
    update = json_body(request, ProductUpdate)
    return json(await _catalog(request).update(product_id, update))


@products.delete("/<product_id:str>")
@openapi.response(204, description="Deleted")
@openapi.secured("bearer")
@require_role("admin")
async def delete_product(request: Request, product_id: str) -> HTTPResponse:
    await _catalog(request).delete(product_id)
    return empty()
