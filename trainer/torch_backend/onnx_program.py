"""ONNX exports (``trainer.export.format=onnx``): write ``model.onnx`` from a torch.export
program, and run one back with onnxruntime behind the same call as the torch programs.

Why ONNX: a serving stack without Python torch (onnxruntime in C++, Java, C#, a browser) can
run the network. Why through ``torch.export``: every domain already builds an
``ExportedProgram`` with its dynamic dims (batch, id counts, sequence length) for
``model.pt2``; ``torch.onnx.export(program, dynamo=True)`` turns that same graph into ONNX,
so the two formats share one traced graph and one set of dynamic-shape rules.

``onnx``, ``onnxscript`` (the exporter) and ``onnxruntime`` (the loader) are the optional
extra ``onnx``: they are imported here lazily, after :func:`require_onnx` has turned a
missing one into the one-line ``pip install 'lingjie[onnx]'`` error.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from lingjie.extras import require

ONNX_EXTRA = "onnx"
FORMAT_PATH = "trainer.export.format"


def require_onnx(load: bool = False) -> None:
    """Refuse in one line when the packages of the ``onnx`` extra are missing: the exporter
    needs onnx + onnxscript, loading an export needs onnxruntime."""
    modules = ("onnxruntime",) if load else ("onnx", "onnxscript")
    why = "loading an ONNX export (model.onnx)" if load else "trainer.export.format=onnx"
    for module in modules:
        require(module, ONNX_EXTRA, why, FORMAT_PATH)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter logs at WARNING for things that do not concern a Lingjie export
    (torchvision ops it skips registering, constant folding it skips), and torch's own
    exporter code trips a FutureWarning of torch's pytree (``LeafSpec``): keep them out of
    the run log while it runs, so an onnx export is as quiet as a torch_export one."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def onnx_bytes(program: torch.export.ExportedProgram, input_names: Sequence[str],
               output_names: Sequence[str]) -> bytes:
    """Serialized ONNX of ``program`` (its dynamic dims stay symbolic in the ONNX graph).

    ``input_names`` are the flattened program inputs in order (a dict input: its keys, in
    insertion order, which is torch's pytree order), ``output_names`` the keys of the output
    dict; the loader feeds and returns tensors by these names. The dynamo exporter handles
    every model of the zoos (rec, cv, nlp), so there is no fallback to the legacy
    TorchScript-based exporter (deprecated, and it would need its own dynamic-axis rules).
    """
    require_onnx()
    with _quiet_exporter(), torch.no_grad():
        exported = torch.onnx.export(program, (), dynamo=True, input_names=list(input_names),
                                     output_names=list(output_names), verbose=False)
    return exported.model_proto.SerializeToString()


class OnnxProgram:
    """``model.onnx`` in an onnxruntime CPU session, called like the torch programs.

    Takes the program's inputs as one dict of tensors (rec) or positionally (cv, nlp) and
    returns a dict of CPU tensors keyed by the export's output names, so callers of
    :func:`trainer.torch_backend.programs.load_program` need not know the format.
    """

    def __init__(self, path: Path, input_names: Sequence[str]) -> None:
        require_onnx(load=True)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the session's own notes are not the user's concern
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = list(input_names)
        self.declared = {i.name for i in self.session.get_inputs()}  # inputs the graph does not use are dropped
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, *args: Any) -> dict[str, torch.Tensor]:
        if len(args) == 1 and isinstance(args[0], dict):
            named = dict(args[0])
        else:
            named = dict(zip(self.input_names, args))
        feeds = {k: _numpy(v) for k, v in named.items() if k in self.declared}
        outputs = self.session.run(self.output_names, feeds)
        return {name: torch.from_numpy(np.asarray(v)) for name, v in zip(self.output_names, outputs)}


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
