"""``lingjie serve PATH`` / ``python -m trainer.serve PATH``: serve an export over HTTP.

PATH: an export directory, a run directory (its ``export/``) or a model repository of
versions (``<root>/<version>/``; the highest complete one is served), local or an fsspec URL
(``oss://``, ``hdfs://``, ``file://``, ...). The model is loaded and warmed up before the port
opens, so ``/v2/health/ready`` answering means it can score; afterwards PATH is polled and new
versions are loaded, warmed up and swapped in while the old one keeps serving; delta exports
(``<export>/deltas/``, trainer.export.delta_every_steps) of the served version are applied in
place, one reference swap per delta (:mod:`trainer.serve.deltas`).
"""
from __future__ import annotations

import argparse
import logging
import sys

from lingjie.errors import LingjieError
from lingjie.extras import require

log = logging.getLogger("lingjie.serve")
WHY = "lingjie serve"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lingjie serve", description="serve an exported model over HTTP "
                                "(KServe v1, Open Inference Protocol v2, Prometheus /metrics)")
    p.add_argument("path", help="export dir, run dir, or model repository (<root>/<version>/); "
                   "a local path or an fsspec URL (oss://, hdfs://, file://)")
    p.add_argument("--version", default="", help="serve this version (pinned) instead of following the newest")
    p.add_argument("--poll-seconds", type=float, default=2.0,
                   help="how often PATH is listed for new versions and deltas (0: never reload)")
    p.add_argument("--cache-dir", default="", help="where versions of a remote PATH are copied (default: a temp dir)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: all)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--model-name", default="", help="name in the URLs (default: the experiment name)")
    p.add_argument("--max-batch-size", type=int, default=32, help="instances per coalesced forward pass")
    p.add_argument("--max-latency-ms", type=float, default=5.0, help="how long a request waits for company")
    p.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    p.add_argument("--workers", type=int, default=2, help="forward passes running at once (threads)")
    p.add_argument("--max-instances", type=int, default=1024, help="instances per request (more: 400)")
    p.add_argument("--max-body-bytes", type=int, default=8 << 20, help="request body limit (more: 413)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return p


def build(args: argparse.Namespace) -> tuple[object, str]:
    """(the app, a one-line description of what it serves) for the parsed arguments."""
    from pathlib import Path

    from trainer.serve.app import create_app
    from trainer.serve.common import ServeOptions
    from trainer.serve.models import ModelManager
    from trainer.serve.repository import Repository, Resolved, model_name

    repo = Repository(args.path, Path(args.cache_dir).expanduser() if args.cache_dir else None)
    manager = ModelManager(repo, pinned=args.version or None)
    model = manager.load_initial()
    resolved = Resolved(model.export_dir, model.meta, model.version, repo.run_dir_of(model.export_dir))
    name = args.model_name or model_name(resolved, getattr(model.adapter, "name_hint", ""))
    options = ServeOptions(max_batch_size=1 if args.no_batching else args.max_batch_size,
                           max_latency_ms=args.max_latency_ms, workers=args.workers,
                           max_instances=args.max_instances, max_body_bytes=args.max_body_bytes)
    app = create_app(manager, name, options, poll_seconds=args.poll_seconds)
    pinned = ", pinned" if manager.pinned else f", watching {repo.url} every {args.poll_seconds:g}s" \
        if args.poll_seconds > 0 else ""
    return app, f"{name} (version {model.version}{pinned}, {model.export_dir})"


def main(argv: list[str] | None = None) -> int:
    """Parse, load, serve until interrupted; a user error is one ``error:`` line, status 2."""
    args = parser().parse_args(argv)
    try:
        for module in ("fastapi", "uvicorn", "prometheus_client"):
            require(module, "serve", WHY)
        app, what = build(args)
    except LingjieError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    import gc

    import uvicorn

    # the loaded frameworks and model leave a large heap of long-lived objects; without this,
    # the cyclic collector walks it again and again under load (250-500 ms pauses in 7% of the
    # requests, benchmarks/RESULTS.md "Serving"); frozen objects are skipped by every collection
    gc.collect()
    gc.freeze()
    print(f"serving {what} at http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
