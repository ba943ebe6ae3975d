"""Prometheus metrics of the server, in its own CollectorRegistry.

Why a private registry: the process-global default one also carries whatever else the process
imported registers, and two servers built in one process (tests) would collide on metric names.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServeMetrics:
    """Requests and errors by endpoint and status, latency, coalesced batch sizes, the version,
    reloads and reload failures."""

    def __init__(self, model: str, version: str = "") -> None:
        self.model = model
        self.registry = CollectorRegistry()
        self.requests = Counter("lingjie_serve_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("lingjie_serve_errors", "requests answered with a 4xx/5xx, by status",
                              ["status"], registry=self.registry)
        self.latency = Histogram("lingjie_serve_request_latency_seconds", "request latency by endpoint",
                                 ["endpoint"], registry=self.registry)
        self.batch_size = Histogram("lingjie_serve_batch_size", "instances per forward pass (after coalescing)",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.instances = Counter("lingjie_serve_instances", "instances scored", registry=self.registry)
        self.version = Gauge("lingjie_serve_model_version_info", "the model version served (value 1)",
                             ["model", "version"], registry=self.registry)
        self.reload_failures = Counter("lingjie_serve_reload_failures", "versions that failed to load or warm up "
                                       "(the previous one kept serving)", registry=self.registry)
        self.reloads = Counter("lingjie_serve_reloads", "versions swapped in after the start (reload, pin)",
                               registry=self.registry)
        self.delta_step = Gauge("lingjie_serve_delta_step", "the step of the last delta export applied to the "
                                "served version (-1: none)", ["model", "version"], registry=self.registry)
        self.deltas_applied = Counter("lingjie_serve_deltas_applied", "delta exports applied in place",
                                      registry=self.registry)
        self.delta_failures = Counter("lingjie_serve_delta_failures", "delta exports refused (corrupt, out of "
                                      "chain; the model kept serving)", registry=self.registry)
        self._served = ""
        if version:
            self.serving(version)

    def serving(self, version: str, delta_step: int | None = None) -> None:
        """The served version (or its delta) changed: the gauges show only the new one."""
        if self._served != version:
            if self._served:
                self.version.remove(self.model, self._served)
                self.delta_step.remove(self.model, self._served)
            self.version.labels(model=self.model, version=version).set(1)
            self._served = version
        self.delta_step.labels(model=self.model, version=version).set(-1 if delta_step is None else delta_step)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)
        if status >= 400:
            self.errors.labels(status=str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
