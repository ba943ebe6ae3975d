"""The FastAPI app: KServe v1, the Open Inference Protocol (KServe v2) and /metrics.

Every bad request is answered with a 4xx JSON body ``{"error": ..., "field": ...}`` that names
the offending field (a JSON path such as ``instances[3].user_id``), from one place: validators
and adapters raise :class:`lingjie.errors.RequestError`, the handlers below turn it (and
FastAPI's / Starlette's own errors: unknown path, wrong method, validation) into the response.
A client should never see a 5xx or a dropped connection for its own mistake.
"""
from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lingjie.errors import LingjieError, RequestError
from trainer.serve.batching import MicroBatcher
from trainer.serve.common import ServeOptions, Served, error_response
from trainer.serve.metrics import ServeMetrics
from trainer.serve.models import ModelManager
from trainer.serve.routes import add_routes


def create_app(manager: ModelManager, name: str, options: ServeOptions | None = None,
               poll_seconds: float = 0.0) -> FastAPI:
    """The app serving ``manager``'s model (loaded and warmed up already) under ``name``;
    while it runs, the repository is watched every ``poll_seconds`` (0: never)."""
    options = options or ServeOptions()
    metrics = ServeMetrics(name)
    manager.attach(metrics)
    batcher = MicroBatcher(lambda rows: manager.current.predict(rows), options.max_batch_size,
                           options.max_latency_ms, options.workers, on_batch=metrics.batch_size.observe)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        manager.start(poll_seconds)
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            manager.stop()
            await batcher.stop()

    app = FastAPI(title=f"lingjie serve: {name}", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.ready = False
    app.state.metrics = metrics
    install_error_handlers(app)
    install_metrics_middleware(app, metrics)
    add_routes(app, Served(name, manager), options, batcher)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Map every error a request can cause to the one JSON error shape."""

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(400, str(first.get("msg", "invalid request")), field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = {404: "path", 405: "method"}.get(exc.status_code, "")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        return error_response(exc.status_code, message, field)

    @app.exception_handler(LingjieError)
    async def data_error(_: Request, exc: LingjieError) -> JSONResponse:  # rows the model cannot score
        return error_response(400, str(exc), "instances")

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}", "")


def install_metrics_middleware(app: FastAPI, metrics: ServeMetrics) -> None:
    """Count every request by its route template (not its raw path: bounded label values)."""

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            metrics.observe(endpoint, status, time.perf_counter() - start)
