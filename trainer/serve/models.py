"""The served model and its lifecycle: load + warm up, hot reload, pinning, rollback.

Why one reference swapped under a lock: a request takes the current :class:`LoadedModel` once
(``manager.current``) and uses it for its checks, its forward pass (the micro-batcher only
coalesces requests holding the same model) and the version it reports, so a reload never mixes
versions in one pass nor fails a request: in-flight batches finish on the model they started
with, new requests get the new one, and the old model is freed when its last batch returns.

Loading (download, adapter construction, warm-up pass) happens off the event loop: in the
watcher thread for new versions, in a worker thread for a pin request. A version that fails is
recorded with its meta.json stamp (log line, ``GET /v2/repository/index``, the model metadata,
``lingjie_serve_reload_failures_total``), the old model keeps serving, and it is not tried again
until its files change.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lingjie.errors import ConfigError, LingjieError
from trainer.serve.repository import Repository, Version, version_key

log = logging.getLogger("lingjie.serve")
LATEST = "latest"


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A loaded, warmed-up version: what one request is served by from start to end."""

    adapter: Any
    version: str
    stamp: str
    export_dir: Path
    meta: dict[str, Any]
    signature: dict[str, list[dict[str, Any]]]
    platform: str
    delta_step: int | None = None  # the last delta export applied (trainer.serve.deltas), None: none

    def predict(self, instances: list[Any]) -> list[dict[str, Any]]:
        return self.adapter.predict(instances)


class LoadFailed(LingjieError):
    """A version could not be loaded or warmed up (the previous one keeps serving)."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"version {version} failed to load: {reason}")
        self.version = version
        self.reason = reason


class UnknownVersion(LingjieError):
    """A pin named a version the repository does not hold (complete)."""


def signature(adapter: Any) -> dict[str, list[dict[str, Any]]]:
    """Warm the model up (the first forward pass compiles / allocates) and derive the OIP
    input and output metadata from the example rows and their predictions."""
    examples = adapter.example_instances()
    predictions = adapter.predict(examples)  # not through the batcher: no batch-size metric for it
    inputs = []
    if examples and isinstance(examples[0], dict):
        inputs = [{"name": k, "datatype": datatype(v), "shape": [-1]} for k, v in examples[0].items()]
    outputs = [{"name": o["name"], "datatype": o["datatype"], "shape": [-1, *o["shape"][1:]]}
               for o in adapter.v2_outputs(predictions)]
    return {"inputs": inputs, "outputs": outputs}


def datatype(v: Any) -> str:
    """The OIP datatype of one JSON value."""
    if isinstance(v, bool):
        return "BOOL"
    if isinstance(v, int):
        return "INT64"
    if isinstance(v, float):
        return "FP64"
    return "BYTES"


def load_export(export_dir: Path, version: Version) -> LoadedModel:
    """The domain's adapter over ``export_dir``, warmed up; raises on anything wrong."""
    from trainer.domains import serving_adapter

    meta = json.loads((export_dir / "meta.json").read_text())
    domain = str(meta.get("domain") or ("rec" if "input_columns" in meta else ""))
    if not domain:
        raise ConfigError("serve.path", f"{export_dir}/meta.json names no domain; re-export it with this version")
    adapter = serving_adapter(domain)(export_dir)
    return LoadedModel(adapter, version.name, version.stamp, export_dir, meta, signature(adapter),
                       f"lingjie_{domain}_{meta.get('format', '')}")


Loader = Callable[[Path, Version], LoadedModel]


class ModelManager:
    """Holds the served model; follows the repository's newest good version or a pinned one."""

    def __init__(self, repo: Repository, pinned: str | None = None, loader: Loader = load_export) -> None:
        self.repo = repo
        self.pinned = None if pinned in (None, "", LATEST) else pinned
        self.loader = loader
        self.metrics: Any = None  # ServeMetrics, attached by the app
        self.failed: dict[str, tuple[str, str]] = {}  # version -> (stamp it failed at, reason)
        self.listed: list[Version] = []
        self.loading: str | None = None
        self._current: LoadedModel | None = None
        self._swap = threading.Lock()
        self._decide = threading.RLock()  # one decision + load at a time (watcher vs pin requests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_failures = 0
        self._pending_delta_failures = 0
        from trainer.serve.deltas import DeltaFollower

        self.deltas = DeltaFollower()

    def current_or_none(self) -> LoadedModel | None:
        return self._current

    def replace_current(self, expected: LoadedModel, model: LoadedModel) -> bool:
        """Swap ``model`` in if ``expected`` is still served (one reference swap); False if not."""
        with self._swap:
            if self._current is not expected:
                return False
            self._current = model
        if self.metrics is not None:
            self.metrics.serving(model.version, model.delta_step)
            self.metrics.deltas_applied.inc()
        return True

    def count_delta_failure(self) -> None:
        if self.metrics is None:
            self._pending_delta_failures += 1
        else:
            self.metrics.delta_failures.inc()

    @property
    def current(self) -> LoadedModel:
        model = self._current
        assert model is not None, "load() first"
        return model

    def load_initial(self) -> LoadedModel:
        """The pinned version, else the newest version that loads; ConfigError if none does."""
        with self._decide:
            self.listed = self.repo.versions()
            if not self.listed:
                raise ConfigError("serve.path", f"{self.repo.url} holds no complete export: expected meta.json and "
                                  "the program in it, in its export/ (a run dir), or in a version subdirectory "
                                  "(a model repository)")
            if self.pinned is not None:
                try:
                    self._swap_in(self._find(self.pinned))
                except LingjieError as exc:
                    raise ConfigError("serve.version", str(exc)) from None
                self.deltas.follow(self)
                return self.current
            for version in self.listed:
                try:
                    self._swap_in(version)
                except LoadFailed:
                    continue
                self.deltas.follow(self)
                return self.current
            reasons = "; ".join(f"{v}: {r}" for v, (_, r) in self.failed.items())
            raise ConfigError("serve.path", f"no version of {self.repo.url} could be loaded ({reasons})")

    def poll(self) -> None:
        """List the repository and move to the version to serve, if it changed (never raises
        for a bad version: it is recorded and the current model keeps serving)."""
        with self._decide:
            self.listed = self.repo.versions()
            target = self._target()
            current = self._current
            if target is not None and (current is None or
                                       (target.name, target.stamp) != (current.version, current.stamp)):
                try:
                    self._swap_in(target)
                except LoadFailed:
                    pass
            self._sync_deltas()
            self.deltas.follow(self)

    def _sync_deltas(self) -> None:
        """A remote repository: bring the served version's new deltas into its local copy."""
        current = self._current
        version = next((v for v in self.listed if current is not None and v.name == current.version), None)
        if version is None or self.repo.local:
            return
        try:
            self.repo.sync_deltas(version, current.export_dir)
        except Exception as exc:  # noqa: BLE001 - a listing / download error must not stop serving
            log.error("cannot copy the deltas of version %s from %s: %s: %s", version.name, self.repo.url,
                      type(exc).__name__, exc)

    def _target(self) -> Version | None:
        """The pinned version, else the highest good one; following ``latest`` never moves
        below the served version while that one is still listed (a broken newer version
        must not roll the server back on its own)."""
        good = [v for v in self.listed if self.failed.get(v.name, ("", ""))[0] != v.stamp]
        if self.pinned is not None:
            return next((v for v in good if v.name == self.pinned), None)
        if not good:
            return None
        current = self._current
        if current is not None and version_key(good[0].name) < version_key(current.version) and \
                any(v.name == current.version for v in self.listed) and not self.repo.single:
            return next((v for v in good if v.name == current.version), None)
        return good[0]

    def _find(self, name: str) -> Version:
        found = next((v for v in self.listed if v.name == name), None)
        if found is None:
            have = ", ".join(v.name for v in self.listed) or "none"
            raise UnknownVersion(f"no complete version {name!r} in {self.repo.url} (versions: {have})")
        return found

    def pin(self, name: str) -> LoadedModel:
        """Serve version ``name`` from now on (``latest``: follow the newest again). Raises
        UnknownVersion (404) or LoadFailed (409); on failure the current model keeps serving."""
        with self._decide:
            self.listed = self.repo.versions()
            if name == LATEST:
                self.pinned = None
                self.poll()
                return self.current
            version = self._find(name)
            current = self._current
            if current is None or (current.version, current.stamp) != (version.name, version.stamp):
                self._swap_in(version)
            self.pinned = name
            return self.current

    def _swap_in(self, version: Version) -> LoadedModel:
        """Load + warm up ``version`` and make it the served model (one reference swap)."""
        self.loading = version.name
        try:
            export_dir = self.repo.local_dir(version)
            model = self.loader(export_dir, version)
        except Exception as exc:  # noqa: BLE001 - any failure of a version is reported, never fatal
            reason = f"{type(exc).__name__}: {exc}"[:500]
            self.failed[version.name] = (version.stamp, reason)
            log.error("version %s of %s failed to load; still serving %s: %s", version.name, self.repo.url,
                      self._current.version if self._current else "nothing", reason)
            self._count_failure()
            raise LoadFailed(version.name, reason) from None
        finally:
            self.loading = None
        if self._current is not None and self.repo.stamp_of(version) != version.stamp:
            # rewritten while it loaded (a stream re-export in place): the next poll loads it again
            log.info("version %s changed while loading; keeping %s", version.name, self._current.version)
            raise LoadFailed(version.name, "its files changed while it loaded; try again")
        self.failed.pop(version.name, None)
        with self._swap:
            previous, self._current = self._current, model
        keep = {model.export_dir, *([previous.export_dir] if previous else [])}
        self.repo.prune_cache(keep)
        if self.metrics is not None:
            self.metrics.serving(model.version)
            if previous is not None:
                self.metrics.reloads.inc()
        log.warning("serving version %s (%s)", model.version, export_dir)
        return model

    def _count_failure(self) -> None:
        if self.metrics is None:
            self._pending_failures += 1
        else:
            self.metrics.reload_failures.inc()

    def attach(self, metrics: Any) -> None:
        """Report to ``metrics`` (ServeMetrics) from now on, failures before it included."""
        self.metrics = metrics
        metrics.reload_failures.inc(self._pending_failures)
        metrics.delta_failures.inc(self._pending_delta_failures)
        self._pending_failures = self._pending_delta_failures = 0
        if self._current is not None:
            metrics.serving(self._current.version, self._current.delta_step)

    def index(self) -> list[dict[str, str]]:
        """``GET /v2/repository/index``: every complete version with its state and reason."""
        current, rows = self._current, []
        for v in self.listed:
            stamp, reason = self.failed.get(v.name, ("", ""))
            reason = reason if stamp == v.stamp else ""
            state = "UNAVAILABLE"
            if current is not None and current.version == v.name:
                state = "READY"
            elif self.loading == v.name:
                state = "LOADING"
            rows.append({"name": "", "version": v.name, "state": state, "reason": reason})
        if current is not None and not any(v.name == current.version for v in self.listed):
            rows.append({"name": "", "version": current.version, "state": "READY",
                         "reason": "no longer in the repository"})
        return rows

    def start(self, poll_seconds: float) -> None:
        """Watch the repository every ``poll_seconds`` (0: never) in a daemon thread."""
        if poll_seconds <= 0 or self._thread is not None:
            return
        self._stop.clear()

        def watch() -> None:
            while not self._stop.wait(poll_seconds):
                try:
                    self.poll()
                except Exception as exc:  # noqa: BLE001 - a listing error (network) must not stop watching
                    log.error("cannot list %s: %s: %s", self.repo.url, type(exc).__name__, exc)

        self._thread = threading.Thread(target=watch, name="lingjie-serve-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
