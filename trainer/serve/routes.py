"""The endpoints: KServe v1 (``/v1/models...``), the Open Inference Protocol (``/v2/...``), the
model-repository extension (``/v2/repository/...``: versions, pin / rollback), /metrics.

Every request takes ``manager.current`` once and answers with that model's version (v2
``model_version``, v1 the ``x-model-version`` header) whatever reloads meanwhile.

Request bodies are read and validated by hand (not pydantic models) so each problem is named
by its JSON path, with the same ``{"error", "field"}`` shape whichever check caught it.
"""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from lingjie.errors import RequestError
from trainer.serve.common import SERVER_NAME, ServeOptions, Served, read_json
from trainer.serve.batching import MicroBatcher
from trainer.serve.models import LATEST, LoadedModel, LoadFailed, UnknownVersion


VERSION_HEADER = "x-model-version"
DELTA_HEADER = "x-model-delta-step"  # the delta export applied to the version that answered ("" : none)


def add_routes(app: FastAPI, served: Served, options: ServeOptions, batcher: MicroBatcher) -> None:
    """Register the v1, v2, repository and metrics endpoints of ``served`` on ``app``."""
    manager = served.manager

    def known(name: str) -> None:
        if name != served.name:
            raise RequestError("model", f"unknown model {name!r}; this server serves {served.name!r}", 404)

    async def score(instances: list[Any], model: LoadedModel) -> list[dict[str, Any]]:
        """Check and score on ``model``, the one the request took when it arrived."""
        if len(instances) > options.max_instances:
            raise RequestError("instances", f"{len(instances)} instances exceed the limit of "
                               f"{options.max_instances} per request (--max-instances)")
        model.adapter.check(instances)
        return await batcher.submit(instances, model.predict)

    @app.post("/v1/models/{name}:predict")
    async def v1_predict(name: str, request: Request) -> JSONResponse:
        known(name)
        model = manager.current
        body = await read_json(request, options.max_body_bytes)
        if not isinstance(body, dict):
            raise RequestError("body", 'expected a JSON object {"instances": [...]}')
        if "instances" not in body:
            raise RequestError("instances", 'missing: expected {"instances": [...]}')
        instances = body["instances"]
        if not isinstance(instances, list):
            raise RequestError("instances", "must be a list of instances")
        if not instances:
            raise RequestError("instances", "is empty: send at least one instance")
        predictions = await score(instances, model)
        return JSONResponse({"predictions": predictions}, headers={
            VERSION_HEADER: model.version, DELTA_HEADER: "" if model.delta_step is None else str(model.delta_step)})

    @app.get("/v1/models")
    async def v1_models() -> dict[str, Any]:
        return {"models": [served.name]}

    @app.get("/v1/models/{name}")
    async def v1_model(name: str) -> dict[str, Any]:
        if name.endswith(":predict"):  # GET on the predict URL matched this route's {name}
            raise RequestError("method", f"method GET not allowed on /v1/models/{name} (use POST)", 405)
        known(name)
        model = manager.current
        return {"name": served.name, "ready": bool(app.state.ready), "version": model.version,
                "delta_step": model.delta_step}

    add_v2_routes(app, served, options, score)
    add_repository_routes(app, served)

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def add_v2_routes(app: FastAPI, served: Served, options: ServeOptions, score: Any) -> None:
    """The Open Inference Protocol (KServe v2) endpoints."""
    manager = served.manager

    def known(name: str, version: str | None = None) -> LoadedModel:
        """The served model, after checking the name (and version) a request named."""
        model = manager.current
        if name != served.name:
            raise RequestError("model", f"unknown model {name!r}; this server serves {served.name!r}", 404)
        if version is not None and version != model.version:
            raise RequestError("version", f"unknown version {version!r}; served: {model.version!r} "
                               "(POST /v2/repository/models/NAME/load to serve another)", 404)
        return model

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        from lingjie import __version__

        return {"name": SERVER_NAME, "version": __version__, "extensions": ["model_repository"]}

    @app.get("/v2/health/live")
    async def live() -> dict[str, Any]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": bool(app.state.ready)}, status_code=200 if app.state.ready else 503)

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        model = known(name, version)
        failures = [{"version": r["version"], "reason": r["reason"]} for r in manager.index() if r["reason"]
                    and r["state"] != "READY"]
        return {"name": served.name, "versions": [model.version], "platform": model.platform, **model.signature,
                "pinned": manager.pinned, "reload_failures": failures, "delta_step": model.delta_step,
                "delta_failures": manager.deltas.failures()}

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> JSONResponse:
        known(name, version)
        return JSONResponse({"name": served.name, "ready": bool(app.state.ready)},
                            status_code=200 if app.state.ready else 503)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> dict[str, Any]:
        model = known(name, version)
        body = await read_json(request, options.max_body_bytes)
        if not isinstance(body, dict):
            raise RequestError("body", 'expected a JSON object {"inputs": [...]}')
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise RequestError("inputs", "must be a non-empty list of input tensors")
        for j, tensor in enumerate(inputs):
            if not isinstance(tensor, dict):
                raise RequestError(f"inputs[{j}]", "must be an object {name, shape, datatype, data}")
            for key in ("name", "shape", "datatype", "data"):
                if key not in tensor:
                    raise RequestError(f"inputs[{j}].{key}", "missing")
        wanted = _requested({o["name"] for o in model.signature["outputs"]}, body.get("outputs"))  # before any work
        instances = model.adapter.v2_inputs_to_instances(inputs)
        if not instances:
            raise RequestError("inputs", "hold no rows: send at least one")
        outputs = model.adapter.v2_outputs(await score(instances, model))
        if wanted is not None:
            outputs = [o for o in outputs if o["name"] in wanted]
        reply = {"model_name": served.name, "model_version": model.version, "outputs": outputs}
        if "id" in body:
            reply["id"] = body["id"]
        return reply


def add_repository_routes(app: FastAPI, served: Served) -> None:
    """The model-repository extension (KServe / Triton style): list versions, pin one
    (rollback = pin the previous one), unpin (``"version": "latest"``)."""
    manager = served.manager

    @app.get("/v2/repository/index")
    @app.post("/v2/repository/index")
    async def index() -> list[dict[str, str]]:
        return [{**row, "name": served.name} for row in manager.index()]

    @app.post("/v2/repository/models/{name}/load")
    async def load(name: str, request: Request) -> dict[str, Any]:
        if name != served.name:
            raise RequestError("model", f"unknown model {name!r}; this server serves {served.name!r}", 404)
        body = await request.body()
        version = LATEST
        if body.strip():
            parsed = await read_json(request, 1 << 16)
            params = parsed.get("parameters", {}) if isinstance(parsed, dict) else None
            if not isinstance(params, dict):
                raise RequestError("parameters", 'expected {"parameters": {"version": "V"}}')
            version = str(params.get("version", LATEST))
        try:
            model = await asyncio.to_thread(manager.pin, version)
        except UnknownVersion as exc:
            raise RequestError("parameters.version", str(exc), 404) from None
        except LoadFailed as exc:
            raise RequestError("parameters.version", str(exc), 409) from None
        return {"name": served.name, "version": model.version, "pinned": manager.pinned}


def _requested(names: set[str], wanted: Any) -> set[str] | None:
    """The output names a v2 request asked for (``"outputs": [{"name": ...}]``); None: all."""
    if wanted is None:
        return None
    if not isinstance(wanted, list):
        raise RequestError("outputs", "must be a list of {\"name\": ...}")
    picked = set()
    for k, item in enumerate(wanted):
        name = item.get("name") if isinstance(item, dict) else None
        if name not in names:
            raise RequestError(f"outputs[{k}].name", f"unknown output {name!r}; outputs: {', '.join(sorted(names))}")
        picked.add(name)
    return picked
