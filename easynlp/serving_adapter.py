"""Serving adapter of text exports: JSON instances -> :class:`easynlp.export.TextPredictor` -> JSON.

``lingjie serve`` loads an export directory through :class:`Adapter` and hands it coalesced
batches of instances from several requests. An instance is

  {"text": "..."}  or a bare string "..."          classification
  {"text": "...", "text_pair": "..."}               matching (sentence-pair) models
  {"tokens": ["Alice", "flies", "to", "Paris"]}    token classification (NER); {"text": ...} is
                                                  split on whitespace, as predict mode does

The tokenizer, truncation to the training ``max_len`` and the network are the export's own (the
TextPredictor path), and the answer is what ``trainer.mode=predict`` writes for the same text:
``label`` / ``prob`` / ``probs`` (every class), or ``tags`` (one per word) for NER.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from easynlp.export import TextPredictor
from lingjie.errors import RequestError
from trainer.oip_tensors import tensor, v2_string_columns, v2_string_rows

MAX_CHARS = 20_000  # per text (or per token list): longer requests are refused, not silently cut
MAX_TOKENS = 4_096  # words of one NER instance: one tag each comes back


class Adapter:
    """A text export (program + tokenizer.json + meta.json) behind the serving protocol."""

    def __init__(self, export_dir: Path) -> None:
        self.predictor = TextPredictor(export_dir)
        meta = self.predictor.meta
        self.name_hint: str = str(meta.get("experiment_name") or meta.get("experiment") or "")
        self.labels: list[str] = list(self.predictor.labels)
        self.token_task: bool = self.predictor.token_task
        self.pair_task: bool = self.predictor.pair_task

    # ----------------------------------------------------------------- instances
    def check(self, instances: list[Any]) -> None:
        """RequestError naming the first bad instance's field (see :meth:`parse`)."""
        for i, inst in enumerate(instances):
            self.parse(i, inst)

    def parse(self, i: int, inst: Any) -> tuple[Any, str | None]:
        """(text or word list, pair text or None) of instance ``i``, validated."""
        if isinstance(inst, str):
            inst = {"text": inst}
        if not isinstance(inst, dict):
            raise RequestError(f"instances[{i}]", f"expected an object or a string, got {type(inst).__name__}")
        if self.token_task and "tokens" in inst:
            return self._tokens(i, inst["tokens"]), None
        if "text" not in inst:
            want = "tokens (a list of words) or text" if self.token_task else "text"
            raise RequestError(f"instances[{i}].text", f"missing: expected {want}")
        text = self._text(f"instances[{i}].text", inst["text"])
        if not self.pair_task:
            return (text.split() if self.token_task else text), None
        if "text_pair" not in inst:
            raise RequestError(f"instances[{i}].text_pair", "missing: this is a sentence-pair (matching) model")
        return text, self._text(f"instances[{i}].text_pair", inst["text_pair"])

    @staticmethod
    def _text(field: str, value: Any) -> str:
        if not isinstance(value, str):
            raise RequestError(field, f"expected a string, got {type(value).__name__}")
        if not value.strip():
            raise RequestError(field, "empty text")
        if len(value) > MAX_CHARS:
            raise RequestError(field, f"{len(value)} characters, more than {MAX_CHARS}", status=413)
        return value

    @staticmethod
    def _tokens(i: int, value: Any) -> list[str]:
        field = f"instances[{i}].tokens"
        if not isinstance(value, list) or not value:
            raise RequestError(field, f"expected a non-empty list of strings, got {type(value).__name__}"
                               + (" (empty)" if isinstance(value, list) else ""))
        for k, w in enumerate(value):
            if not isinstance(w, str) or not w.strip():
                raise RequestError(f"{field}[{k}]", f"expected a non-empty string, got {w!r}"[:200])
        if len(value) > MAX_TOKENS or sum(map(len, value)) > MAX_CHARS:
            raise RequestError(field, f"too long ({len(value)} words, more than {MAX_TOKENS} or "
                               f"{MAX_CHARS} characters)", status=413)
        return list(value)

    # ----------------------------------------------------------------- predict
    def predict(self, instances: list[Any]) -> list[dict[str, Any]]:
        """One prediction dict per instance, the whole (coalesced) batch through TextPredictor
        (padding-independent network: a row's answer does not depend on its batch mates)."""
        parsed = [self.parse(i, inst) for i, inst in enumerate(instances)]
        if not parsed:
            return []
        texts = [t for t, _ in parsed]
        pairs = [p or "" for _, p in parsed] if self.pair_task else None
        return self.predictor.predict(texts, pairs, batch_size=max(1, len(texts)))

    def example_instances(self) -> list[Any]:
        """Two short synthetic instances of the model's kind (warm-up of two sequence lengths)."""
        if self.token_task:
            return [{"tokens": ["hello", "world"]}, {"tokens": ["a"] * 20}]
        if self.pair_task:
            return [{"text": "hello", "text_pair": "hello there"}, {"text": "a " * 20, "text_pair": "b"}]
        return [{"text": "hello"}, {"text": "a short example text " * 4}]

    # ----------------------------------------------------------------- Open Inference Protocol
    def v2_inputs_to_instances(self, inputs: list[dict]) -> list[Any]:
        """BYTES ``text`` [N] (+ ``text_pair`` [N] for matching), or for NER ``tokens`` [N, W]
        (rows padded with "") or ``text`` [N] -> N instances."""
        if self.token_task and isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict) \
                and inputs[0].get("name") == "tokens":
            return [{"tokens": row} for row in v2_string_rows(inputs[0], "inputs[0]")]
        names = ("text", "text_pair") if self.pair_task else ("text",)
        columns = v2_string_columns(inputs, names)
        n = len(next(iter(columns.values())))
        return [{k: col[r] for k, col in columns.items()} for r in range(n)]

    def v2_outputs(self, predictions: list[dict]) -> list[dict]:
        """Classification: ``label`` BYTES [N], ``prob`` FP32 [N], ``probs`` FP32 [N, C] (the
        export's label order). NER: ``tags`` BYTES [N, W] padded with "" to the longest row."""
        n = len(predictions)
        if self.token_task:
            w = max([len(p["tags"]) for p in predictions], default=0)
            return [tensor("tags", [n, w], "BYTES", [t for p in predictions
                                                      for t in list(p["tags"]) + [""] * (w - len(p["tags"]))])]
        probs = np.asarray([[p["probs"][c] for c in self.labels] for p in predictions], np.float64)
        return [tensor("label", [n], "BYTES", [p["label"] for p in predictions]),
                tensor("prob", [n], "FP32", [float(p["prob"]) for p in predictions]),
                tensor("probs", [n, len(self.labels)], "FP32", probs.reshape(-1).tolist())]
