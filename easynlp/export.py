"""Export a text model with its tokenizer, and predict on raw text from the export alone.

The export directory is self-contained:

  model.pt2 | model.torchscript.pt | model.onnx   the network: token ids -> probabilities
  tokenizer.json                                 the exact tokenizer of training (tokenizers library)
  meta.json                                      labels, task, max_len, text columns, architecture

:class:`TextPredictor` (and ``python -m easynlp.export EXPORT_DIR --text ...``) turns raw
strings into predictions with nothing but torch and tokenizers (plus onnxruntime for an ONNX
export): no config, no checkpoint, no Lingjie training code, the same tokenization and
padding-independent network as training.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from dataio.atomic import atomic_write_bytes, atomic_write_json
from trainer.torch_backend.programs import PROGRAM_FILES


INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids", "word_starts")  # ServingModule.forward's


def _example(batch: int = 2, length: int = 16) -> tuple[torch.Tensor, ...]:
    """Inputs for tracing torch.export (shapes are declared dynamic)."""
    ids = torch.full((batch, length), 5, dtype=torch.long)
    return ids, torch.ones_like(ids), torch.zeros_like(ids), torch.zeros((batch, 4), dtype=torch.long)


def export_text_model(model: torch.nn.Module, tokenizer_json: str, out_dir: Path, fmt: str,
                      meta: dict[str, Any]) -> Path:
    """Write the program, tokenizer.json and meta.json into ``out_dir``; returns out_dir."""
    from easynlp.models import ServingModule

    out_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    serving = ServingModule(model.cpu()).eval()
    try:
        buf = io.BytesIO()
        if fmt == "torchscript":
            torch.jit.save(torch.jit.script(serving), buf)
        else:
            from torch.export import Dim

            batch, seq, words = Dim("batch", min=1, max=65536), Dim("seq", min=8, max=int(meta["max_len"]) + 8), \
                Dim("words", min=1, max=65536)
            shapes = ({0: batch, 1: seq}, {0: batch, 1: seq}, {0: batch, 1: seq}, {0: batch, 1: words})
            program = torch.export.export(serving, _example(), dynamic_shapes=shapes)
            if fmt == "onnx":
                from trainer.torch_backend.onnx_program import onnx_bytes

                buf.write(onnx_bytes(program, INPUT_NAMES, ["probs"]))
                meta = {**meta, "onnx_inputs": list(INPUT_NAMES), "outputs": ["probs"]}
            else:
                torch.export.save(program, buf)
    finally:
        model.to(device)
    atomic_write_bytes(out_dir / PROGRAM_FILES[fmt], buf.getvalue())
    atomic_write_bytes(out_dir / "tokenizer.json", tokenizer_json.encode())
    atomic_write_json(out_dir / "meta.json", {"format": fmt, "domain": "nlp", "program": PROGRAM_FILES[fmt], **meta})
    return out_dir


class TextPredictor:
    """Raw text -> predictions with an export directory (fresh process, no training code)."""

    def __init__(self, export_dir: str | Path) -> None:
        from tokenizers import Tokenizer

        self.dir = Path(export_dir)
        self.meta = json.loads((self.dir / "meta.json").read_text())
        from trainer.torch_backend.programs import load_program

        self.program, _ = load_program(self.dir)
        self.tok = Tokenizer.from_file(str(self.dir / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=int(self.meta["max_len"]), strategy="longest_first")
        self.pad_id = int(self.tok.token_to_id("[PAD]"))
        self.labels: list[str] = list(self.meta["labels"])
        self.token_task = self.meta["task"] == "token_classification"
        self.pair_task = self.meta["task"] == "matching"  # needs a second text per row

    @staticmethod
    def _pad(rows: list[list[int]], fill: int, multiple: int = 8) -> np.ndarray:
        width = max(8, -(-max(len(r) for r in rows) // multiple) * multiple)
        out = np.full((len(rows), width), fill, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out

    def probabilities(self, texts: Sequence[Any], pairs: Sequence[str] | None = None, batch_size: int = 64,
                      ) -> list[np.ndarray]:
        """Per row: class probabilities [C], or for token tasks tag probabilities [words, T]."""
        out: list[np.ndarray] = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            if self.token_task:
                words = [t.split() if isinstance(t, str) else list(t) for t in chunk]
                encs = self.tok.encode_batch(words, is_pretokenized=True)
            elif pairs is not None:
                encs = self.tok.encode_batch(list(zip(chunk, pairs[start:start + batch_size])))
            else:
                encs = self.tok.encode_batch(chunk)
            ids = self._pad([e.ids for e in encs], self.pad_id)
            mask = self._pad([[1] * len(e.ids) for e in encs], 0)
            types = self._pad([e.type_ids for e in encs], 0)
            starts = np.full((len(chunk), 1), -2, dtype=np.int64)
            if self.token_task:
                starts = np.full((len(chunk), max(1, max(len(w) for w in words))), -2, dtype=np.int64)
                for i, (e, w) in enumerate(zip(encs, words)):
                    starts[i, :len(w)] = -1
                    for pos, wid in reversed(list(enumerate(e.word_ids))):
                        if wid is not None:
                            starts[i, wid] = pos
            with torch.no_grad():
                probs = self.program(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types),
                                     torch.from_numpy(starts))["probs"].numpy()
            if self.token_task:
                o = self.labels.index("O") if "O" in self.labels else 0
                for i, w in enumerate(words):
                    p = probs[i, :len(w)].copy()
                    cut = starts[i, :len(w)] == -1  # cut by truncation: outside
                    p[cut] = np.eye(len(self.labels), dtype=p.dtype)[o]
                    out.append(p)
            else:
                out.extend(probs)
        return out

    def predict(self, texts: Sequence[Any], pairs: Sequence[str] | None = None, batch_size: int = 64,
                ) -> list[dict[str, Any]]:
        """Per row: ``{"label", "prob", "probs"}``, or for token tasks ``{"tags": [...]}``."""
        rows = []
        for p in self.probabilities(texts, pairs, batch_size):
            if self.token_task:
                rows.append({"tags": [self.labels[int(i)] for i in p.argmax(-1)]})
            else:
                best = int(p.argmax())
                rows.append({"label": self.labels[best], "prob": float(p[best]),
                             "probs": {name: float(v) for name, v in zip(self.labels, p)}})
        return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m easynlp.export EXPORT_DIR (--text T ... | --input FILE)``: JSON lines out."""
    parser = argparse.ArgumentParser(prog="python -m easynlp.export", description=main.__doc__)
    parser.add_argument("export_dir")
    parser.add_argument("--text", nargs="*", default=None, help="texts to score")
    parser.add_argument("--pair", nargs="*", default=None, help="second texts (matching models)")
    parser.add_argument("--input", default=None, help="a file with one text per line (tab: text<TAB>pair)")
    args = parser.parse_args(argv)
    pred = TextPredictor(args.export_dir)
    texts, pairs = list(args.text or []), list(args.pair) if args.pair else None
    if args.input:
        lines = [line.rstrip("\n") for line in open(args.input, encoding="utf-8") if line.strip()]
        split = [line.split("\t") for line in lines]
        texts = [s[0] for s in split]
        pairs = [s[1] if len(s) > 1 else "" for s in split] if pred.meta.get("text_pair_column") else None
    for text, row in zip(texts, pred.predict(texts, pairs)):
        print(json.dumps({"text": text, **row}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
