"""Prometheus metrics of a service process, served at `/metrics`.

Each app has its own registry (tests host several services in one process). Label values are bounded: routes are
Sanic's route templates (`/api/v1/orders/<order_id:str>`), an unmatched path is `unmatched`, an unusual method is
`OTHER`; consumers, topics and partitions are the service's own.
"""

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse, raw

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Seconds: from a cached read (~1 ms) to a request that waits for a lock or a restarting database.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServiceMetrics:
    """HTTP and consumer metrics; a service adds its own to `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "From the request's arrival to its response",
            ["route", "method"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.consumed = Counter(
            "consumer_events_total",
            "Consumed events by outcome: handled, duplicate (seen before: skipped), dead_lettered",
            ["consumer", "topic", "outcome"],
            registry=self.registry,
        )
        self.batch_duration = Histogram(
            "consumer_batch_duration_seconds",
            "Applying one fetch's batch (its transaction, with the handlers)",
            ["consumer"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "consumer_lag_messages",
            "Messages in the partition after the last one applied (high watermark minus next offset)",
            ["consumer", "topic", "partition"],
            registry=self.registry,
        )


def register_metrics(app: Sanic) -> ServiceMetrics:
    """Count and time every request, and serve `/metrics`."""
    metrics = ServiceMetrics()
    app.ctx.metrics = metrics

    @app.middleware("request", priority=100)  # first: the time includes the other middleware
    async def start_clock(request: Request) -> None:
        request.ctx.started = time.perf_counter()

    @app.middleware("response", priority=-100)
    async def count_request(request: Request, response: BaseHTTPResponse) -> None:
        started = getattr(request.ctx, "started", None)
        if started is None:  # refused before the request middleware ran (e.g. a body over the limit)
            return
        route = f"/{request.route.path}" if request.route is not None else "unmatched"
        method = request.method if request.method in METHODS else "OTHER"
        metrics.http_requests.labels(route, method, str(response.status)).inc()
        metrics.http_duration.labels(route, method).observe(time.perf_counter() - started)

    @app.get("/metrics", name="metrics")
    async def serve_metrics(request: Request) -> HTTPResponse:
        return raw(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    return metrics
