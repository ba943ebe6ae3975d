"""Stage timing and the critical-path report of a training run (always on, cheap).

Why: a recommendation step is a pipeline — read, feature transform (both in the loader's
background worker), host-to-device copy, embedding lookup, dense forward/backward, optimizer —
and only the slowest stage that is *not* hidden behind another one bounds throughput. Every
run ends with a report of where the time went, which stage bounds it and how much of the input
work the loader's worker managed to overlap with the step.

Who measures what:

* the loader's worker thread (``easyrec.loader``): ``read`` (source -> Arrow record batches)
  and ``transform`` (FeaturePipeline.transform + slicing), per batch; the consumer side of its
  queue measures ``wait``: the time the train step stood idle for want of a batch;
* the engine, inside ``train_step``: ``h2d``, ``embedding`` (lookup forward + backward),
  ``dense`` (the rest of forward + backward, loss included), ``optimizer``, ``host``
  (loss and predictions back to numpy). The TF engine's step is one compiled call, so there the
  forward, backward and optimizer are one stage, ``step``;
* the train loop: the wall time of each step, and ``loop`` (its own bookkeeping: metrics
  collector, progress bar, logging, checkpoints) as what is left.

Cost: a few ``perf_counter`` calls per step on the CPU. On an accelerator a stage boundary is
only visible after a device synchronisation, which would stall the asynchronous queue, so the
engine splits stages on every ``sample_every``-th step only (``trainer.timing.sample_every``);
other steps contribute their wall time, and the sampled stage shares are scaled to it.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Callable

INPUT_STAGES = ("read", "transform")
STEP_STAGES = ("h2d", "embedding", "dense", "step", "optimizer", "host")
STAGE_HELP = {
    "read": "source -> Arrow record batches (loader worker)",
    "transform": "feature pipeline -> Batch (loader worker)",
    "wait": "train loop idle, waiting for the loader",
    "h2d": "numpy -> framework tensors on the device",
    "embedding": "embedding lookups, forward + backward",
    "dense": "dense forward + backward (loss included)",
    "step": "compiled step: forward + backward + optimizer (TF)",
    "optimizer": "optimizer updates (+ zero_grad, lr schedule)",
    "host": "loss and predictions back to the host",
    "loop": "train loop bookkeeping: metrics, progress, logging, checkpoints",
}


class Laps:
    """Splits one train step into consecutive stages: ``lap(stage)`` closes the stage that
    began at the previous lap. ``sync`` (e.g. ``torch.cuda.synchronize``) runs before every
    clock read so device work is charged to the stage that queued it."""

    __slots__ = ("seconds", "sync", "t")

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync
        self.seconds: dict[str, float] = defaultdict(float)
        if sync is not None:
            sync()
        self.t = time.perf_counter()

    def now(self) -> float:
        if self.sync is not None:
            self.sync()
        return time.perf_counter()

    def lap(self, stage: str) -> None:
        now = self.now()
        self.seconds[stage] += now - self.t
        self.t = now

    def move(self, src: str, dst: str, seconds: float) -> None:
        """Re-charge ``seconds`` of stage ``src`` to ``dst`` (e.g. the embedding's part of forward)."""
        seconds = max(0.0, min(seconds, self.seconds.get(src, 0.0)))
        self.seconds[src] -= seconds
        self.seconds[dst] += seconds


class NoLaps:
    """The no-op stand-in on steps that are not sampled."""

    __slots__ = ()
    seconds: dict[str, float] = {}

    def lap(self, stage: str) -> None:  # noqa: D102 - intentionally nothing
        pass

    def move(self, src: str, dst: str, seconds: float) -> None:  # noqa: D102
        pass


NO_LAPS = NoLaps()


class StageClock:
    """Accumulates the step stages an engine measures; the train loop owns one per run.

    ``begin()`` returns a :class:`Laps` on sampled steps (every ``sample_every``-th), else
    :data:`NO_LAPS`; the engine calls ``end(laps)`` when the step is over.
    """

    def __init__(self, sample_every: int = 1, sync: Callable[[], None] | None = None) -> None:
        self.sample_every = max(1, int(sample_every))
        self.sync = sync
        self.calls = 0
        self.sampled = 0
        self.sampled_seconds: dict[str, float] = defaultdict(float)

    def begin(self) -> Laps | NoLaps:
        self.calls += 1
        if (self.calls - 1) % self.sample_every:
            return NO_LAPS
        return Laps(self.sync)

    def end(self, laps: Laps | NoLaps) -> None:
        if isinstance(laps, Laps):
            self.sampled += 1
            for k, v in laps.seconds.items():
                self.sampled_seconds[k] += v

    def state(self) -> dict[str, Any]:
        return {"sampled": self.sampled, "sampled_seconds": dict(self.sampled_seconds)}


def critical_path(*, steps: int, wall_s: float, step_s: float, wait_s: float, clock: StageClock,
                  loader_stats: dict[str, float] | None) -> dict[str, Any]:
    """The critical-path report (what metrics.json holds under ``critical_path``).

    ``wall_s``: the train loop's time over ``steps`` steps; ``step_s``: time inside
    ``engine.train_step``; ``wait_s``: time blocked on the loader; ``loader_stats``: the
    worker's ``read_s``/``transform_s``/``batches``. Per-batch milliseconds of every stage,
    each stage's share of the wall time, the bounding stage, and the overlap: the fraction of
    the input work (read + transform) that ran hidden behind the step instead of stalling it.
    """
    n = max(1, steps)
    ms: dict[str, float] = {}
    ls = loader_stats or {}
    batches = max(1, int(ls.get("batches", 0) or 0))
    for stage in INPUT_STAGES:
        if f"{stage}_s" in ls:
            ms[stage] = 1e3 * ls[f"{stage}_s"] / batches
    ms["wait"] = 1e3 * wait_s / n
    sampled_total = sum(clock.sampled_seconds.values())
    if clock.sampled and sampled_total > 0:
        # shares from the sampled steps, scaled to the measured wall time of all steps
        for stage, sec in clock.sampled_seconds.items():
            ms[stage] = 1e3 * step_s / n * sec / sampled_total
    else:
        ms["step"] = 1e3 * step_s / n
    ms["loop"] = max(0.0, 1e3 * (wall_s - step_s - wait_s) / n)
    consumer = {k: v for k, v in ms.items() if k not in INPUT_STAGES and k != "wait"}
    producer_ms = sum(ms.get(s, 0.0) for s in INPUT_STAGES)
    consumer_ms = sum(consumer.values())
    if producer_ms > consumer_ms and producer_ms > 0:
        bound = max(INPUT_STAGES, key=lambda s: ms.get(s, 0.0))
        bound_side = "input (loader worker)"
    else:
        bound = max(consumer, key=consumer.get) if consumer else "step"
        bound_side = "train step"
    overlap = 1.0 - min(1.0, ms["wait"] / producer_ms) if producer_ms > 0 else None
    wall_ms = 1e3 * wall_s / n
    return {
        "steps": steps,
        "sampled_steps": clock.sampled,
        "sample_every": clock.sample_every,
        "wall_s": wall_s,
        "ms_per_batch": {k: round(v, 4) for k, v in ms.items()},
        "share_of_wall": {k: round(v / wall_ms, 4) for k, v in ms.items()} if wall_ms > 0 else {},
        "input_ms_per_batch": round(producer_ms, 4),
        "step_ms_per_batch": round(consumer_ms, 4),
        "bound": bound,
        "bound_side": bound_side,
        "overlap": None if overlap is None else round(overlap, 4),
        "samples_per_sec": None,  # filled by the loop (it knows the rows)
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a few log lines (printed at the end of every run)."""
    ms, share = report["ms_per_batch"], report.get("share_of_wall", {})
    lines = [f"critical path over {report['steps']} steps ({report['sampled_steps']} split into stages, "
             f"every {report['sample_every']}): bound by '{report['bound']}' ({report['bound_side']})"]
    order = [s for s in ("read", "transform", "wait", "h2d", "embedding", "dense", "step", "optimizer", "host",
                         "loop") if s in ms]
    for s in order:
        side = "worker" if s in INPUT_STAGES else "step  "
        lines.append(f"  {side} {s:<10} {ms[s]:8.3f} ms/batch  {100 * share.get(s, 0.0):5.1f}% of wall  "
                     f"({STAGE_HELP[s]})")
    ov = report.get("overlap")
    lines.append(f"  input work {report['input_ms_per_batch']:.3f} ms/batch in the worker, train step "
                 f"{report['step_ms_per_batch']:.3f} ms/batch; overlap achieved "
                 f"{'n/a' if ov is None else f'{100 * ov:.1f}%'} (input time hidden behind the step)")
    return "\n".join(lines)
