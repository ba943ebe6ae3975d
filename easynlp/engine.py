"""The text torch engine: trainer's TorchEngine plus the text export (program + tokenizer).

Steps, optimizers, DDP, autocast and checkpoints are trainer's; a text batch converts itself
to model inputs (``TextBatch.to_torch``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.torch_backend.engine import TorchEngine


class TextEngine(TorchEngine):
    """TorchEngine whose export is a text model's: the network, tokenizer.json and meta.json."""

    def export(self, pipeline: Any, example: Any, out_dir: Path, fmt: str, task_types: dict[str, str],
               extra_meta: dict[str, Any]) -> Path:
        """``pipeline``: the :class:`easynlp.text_state.TextState` (its tokenizer goes along);
        ``example`` is unused (the export traces inputs of its own)."""
        from easynlp.export import export_text_model

        return export_text_model(self.model, pipeline.tokenizer_json, out_dir, fmt, extra_meta)
