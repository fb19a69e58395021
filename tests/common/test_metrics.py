"""Every service serves Prometheus metrics at /metrics: its HTTP requests by route template, method and status,
with their durations, in label values that stay bounded whatever the clients send."""

import uuid

from prometheus_client.parser import text_string_to_metric_families
from sanic import Request
from sanic.response import HTTPResponse, json

from common.errors import NotFound
from common.service import create_app
from common.settings import ServiceSettings
from common.tokens import TokenIssuer
from tests.support import serving


def metrics_app(issuer: TokenIssuer):
    app = create_app(f"metrics_{uuid.uuid4().hex[:8]}", "Metrics", ServiceSettings(_env_file=None), issuer.verifier())

    @app.get("/things/<thing_id:str>")
    async def thing(request: Request, thing_id: str) -> HTTPResponse:
        if thing_id == "missing":
            raise NotFound("No such thing")
        return json({"id": thing_id})

    return app


def samples(text: str, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_requests_are_counted_by_route_template_method_and_status(issuer: TokenIssuer) -> None:
    async with serving(metrics_app(issuer)) as client:
        for thing_id in ("a", "b", "missing"):
            await client.get(f"/things/{thing_id}")
        await client.get("/no/such/path")
        await client.request("BREW", "/things/a")
        text = (await client.get("/metrics")).text

    counted = samples(text, "http_requests_total")
    route = "/things/<thing_id:str>"
    assert counted[(("method", "GET"), ("route", route), ("status", "200"))] == 2
    assert counted[(("method", "GET"), ("route", route), ("status", "404"))] == 1
    assert counted[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert not any(dict(labels)["method"] == "BREW" for labels in counted)  # unusual methods are OTHER
    durations = samples(text, "http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", route))] == 3
