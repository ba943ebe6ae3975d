"""The text model zoo: TextCNN, a Transformer encoder (from scratch or a local pretrained BERT-
architecture checkpoint such as MiniLM), and the heads for classification, sentence-pair
matching and token classification.

Every model is TorchScript-compatible (the export is ``torch.jit.script`` of
:class:`ServingModule`) and independent of how much padding a batch has: padded positions are
masked out of convolutions (zero embeddings), attention and pooling, so a row gets the same
outputs in a bucketed batch, a fixed-length batch, or alone at prediction time.

``arch`` (a plain dict saved in every checkpoint and export) fully describes the network, so
evaluate/predict/export rebuild it without the pretrained directory or the training config.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lingjie.errors import ConfigError, DataError

NO_WORD = -2  # word_starts padding (no word); -1: a word that truncation cut off


class SameConv(nn.Module):
    """A 1-D convolution whose output has the input's length (zero padding, the extra position
    of an even width on the right, as ``padding='same'`` does, without its copy warning)."""

    def __init__(self, d_in: int, d_out: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_in, d_out, width)
        self.left = (width - 1) // 2
        self.right = width - 1 - self.left

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, [self.left, self.right]))


class TextCNNEncoder(nn.Module):
    """Kim (2014): token embeddings, parallel 'same' convolutions of several widths, max over time
    (dropout only before the head, as in the paper: dropping embedding inputs starves it)."""

    def __init__(self, vocab_size: int, embedding_dim: int, filter_sizes: List[int], num_filters: int,
                 pad_id: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.type_embed = nn.Embedding(2, embedding_dim)  # which sentence of a pair
        self.convs = nn.ModuleList([SameConv(embedding_dim, num_filters, k) for k in filter_sizes])
        self.out_dim = num_filters * len(filter_sizes)

    def sequence(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        """[B, L, F]: per-position features (zero embeddings beyond the row's end, like the
        convolution's own zero padding, so extra padding changes nothing)."""
        keep = attention_mask.unsqueeze(-1).to(torch.float32)
        x = ((self.embed(input_ids) + self.type_embed(token_type_ids)) * keep).transpose(1, 2)
        feats: List[Tensor] = []
        for conv in self.convs:
            feats.append(F.relu(conv(x)))
        return torch.cat(feats, dim=1).transpose(1, 2)

    def pool(self, seq: Tensor, attention_mask: Tensor) -> Tensor:
        """Max over the row's real positions (features are >= 0 after ReLU)."""
        return seq.masked_fill(attention_mask.unsqueeze(-1) == 0, 0.0).max(dim=1).values


class Embeddings(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, max_position: int, type_vocab: int, eps: float,
                 dropout: float, pad_id: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden, padding_idx=pad_id)
        self.position_embeddings = nn.Embedding(max_position, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)  # noqa: N815 - BERT checkpoint names
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.size(1), device=input_ids.device).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) \
            + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.p = dropout

    def _split(self, x: Tensor) -> Tensor:
        b, length = x.size(0), x.size(1)
        return x.view(b, length, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        p = self.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=p)
        return out.transpose(1, 2).reshape(x.size(0), x.size(1), self.heads * self.head_dim)


class DenseNorm(nn.Module):
    """dense -> dropout -> residual add -> LayerNorm (BERT's SelfOutput / Output)."""

    def __init__(self, d_in: int, hidden: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)  # noqa: N815
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.core = SelfAttention(hidden, heads, attention_dropout)  # BERT names it "self"
        self.output = DenseNorm(hidden, hidden, eps, dropout)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        return self.output(self.core(x, key_mask), x)


class Intermediate(nn.Module):
    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, inner)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.attention = Attention(hidden, heads, eps, dropout, attention_dropout)
        self.intermediate = Intermediate(hidden, inner)
        self.output = DenseNorm(inner, hidden, eps, dropout)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        a = self.attention(x, key_mask)
        return self.output(self.intermediate(a), a)


class LayerStack(nn.Module):
    def __init__(self, layers: List[Layer]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        for layer in self.layer:
            x = layer(x, key_mask)
        return x


class TransformerEncoder(nn.Module):
    """A post-LayerNorm Transformer encoder with BERT's parameter names (so a BERT-architecture
    checkpoint, e.g. MiniLM, loads into it) and BERT's [CLS]/mean pooling."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int,
                 intermediate_size: int, max_position: int, type_vocab_size: int, layer_norm_eps: float,
                 dropout: float, attention_dropout: float, pad_id: int, pooling: str) -> None:
        super().__init__()
        self.embeddings = Embeddings(vocab_size, hidden_size, max_position, type_vocab_size, layer_norm_eps,
                                     dropout, pad_id)
        self.encoder = LayerStack([Layer(hidden_size, num_heads, intermediate_size, layer_norm_eps, dropout,
                                         attention_dropout) for _ in range(num_layers)])
        self.mean_pool = pooling == "mean"
        self.max_position = max_position
        self.out_dim = hidden_size
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()

    def sequence(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        key_mask = (attention_mask > 0).unsqueeze(1).unsqueeze(2)  # [B, 1, 1, L]: attend to real tokens
        return self.encoder(self.embeddings(input_ids, token_type_ids), key_mask)

    def pool(self, seq: Tensor, attention_mask: Tensor) -> Tensor:
        if self.mean_pool:
            m = attention_mask.unsqueeze(-1).to(seq.dtype)
            return (seq * m).sum(1) / m.sum(1).clamp(min=1.0)
        return seq[:, 0]


class TextModel(nn.Module):
    """Encoder + head; the TorchEngine contract: forward(inputs) -> outputs, loss, predict."""

    def __init__(self, encoder: nn.Module, num_labels: int, token_level: bool, task: str, dropout: float,
                 label_smoothing: float, o_index: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.out_dim, num_labels)
        self.token_level = token_level
        self.task = task
        self.label_smoothing = label_smoothing
        self.o_index = o_index

    def logits(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor, word_starts: Tensor) -> Tensor:
        """[B, C] class logits, or [B, W, T] tag logits at each word's first token."""
        seq = self.encoder.sequence(input_ids, attention_mask, token_type_ids)
        if self.token_level:
            index = word_starts.clamp(min=0).unsqueeze(-1).expand(-1, -1, seq.size(-1))
            return self.head(self.dropout(torch.gather(seq, 1, index)))
        return self.head(self.dropout(self.encoder.pool(seq, attention_mask)))

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        ids = inputs["input_ids"]
        types = inputs["token_type_ids"] if "token_type_ids" in inputs else torch.zeros_like(ids)
        starts = inputs["word_starts"] if "word_starts" in inputs else torch.zeros_like(ids[:, :1])
        out = {"logits": self.logits(ids, inputs["attention_mask"], types, starts)}
        if self.token_level:
            out["word_starts"] = starts
        return out

    def loss(self, outputs: Dict[str, Tensor], labels: Dict[str, Tensor]) -> Tensor:
        logits = outputs["logits"]
        target = labels[self.task]
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100,
                               label_smoothing=self.label_smoothing)

    def predict(self, outputs: Dict[str, Tensor]) -> Dict[str, Any]:
        """Class probabilities [B, C]; token tasks: one array of tag ids per row (a word cut by
        truncation is predicted as the outside tag)."""
        probs = torch.softmax(outputs["logits"].float(), dim=-1)
        if not self.token_level:
            return {self.task: probs}
        starts = outputs["word_starts"]
        tags = probs.argmax(-1).masked_fill(starts == -1, self.o_index)
        counts = (starts != NO_WORD).sum(1).tolist()
        return {self.task: [tags[i, :n] for i, n in enumerate(counts)]}


class ServingModule(nn.Module):
    """The exported program: token ids -> probabilities (a fixed signature for TorchScript)."""

    def __init__(self, model: TextModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor, word_starts: Tensor,
                ) -> Dict[str, Tensor]:
        logits = self.model.logits(input_ids, attention_mask, token_type_ids, word_starts)
        return {"probs": torch.softmax(logits, dim=-1)}


# ---------------------------------------------------------------------- building
def arch_of(model_spec: Any, vocab_size: int, pad_id: int, pretrained_dir: Path | None) -> Dict[str, Any]:
    """The plain description of the network that :func:`build_model` rebuilds."""
    if model_spec.name == "textcnn":
        return {"kind": "textcnn", "vocab_size": vocab_size, "embedding_dim": model_spec.embedding_dim,
                "filter_sizes": list(model_spec.filter_sizes), "num_filters": model_spec.num_filters,
                "pad_id": pad_id, "dropout": model_spec.dropout}
    if pretrained_dir is not None:
        cfg = read_bert_config(pretrained_dir)
        return {"kind": "transformer", "vocab_size": cfg["vocab_size"], "hidden_size": cfg["hidden_size"],
                "num_layers": cfg["num_hidden_layers"], "num_heads": cfg["num_attention_heads"],
                "intermediate_size": cfg["intermediate_size"], "max_position": cfg["max_position_embeddings"],
                "type_vocab_size": cfg.get("type_vocab_size", 2), "layer_norm_eps": cfg.get("layer_norm_eps", 1e-12),
                "dropout": model_spec.dropout, "attention_dropout": model_spec.attention_dropout,
                "pad_id": cfg.get("pad_token_id", pad_id), "pooling": model_spec.pooling}
    return {"kind": "transformer", "vocab_size": vocab_size, "hidden_size": model_spec.hidden_size,
            "num_layers": model_spec.num_layers, "num_heads": model_spec.num_heads,
            "intermediate_size": model_spec.intermediate_size, "max_position": model_spec.max_position,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "dropout": model_spec.dropout,
            "attention_dropout": model_spec.attention_dropout, "pad_id": pad_id, "pooling": model_spec.pooling}


def build_model(arch: Dict[str, Any], num_labels: int, token_level: bool, task: str, dropout: float,
                label_smoothing: float, o_index: int) -> TextModel:
    if arch["kind"] == "textcnn":
        encoder: nn.Module = TextCNNEncoder(arch["vocab_size"], arch["embedding_dim"], arch["filter_sizes"],
                                            arch["num_filters"], arch["pad_id"], arch["dropout"])
    else:
        encoder = TransformerEncoder(arch["vocab_size"], arch["hidden_size"], arch["num_layers"], arch["num_heads"],
                                     arch["intermediate_size"], arch["max_position"], arch["type_vocab_size"],
                                     arch["layer_norm_eps"], arch["dropout"], arch["attention_dropout"],
                                     arch["pad_id"], arch["pooling"])
    return TextModel(encoder, num_labels, token_level, task, dropout, label_smoothing, o_index)


def read_bert_config(directory: Path) -> Dict[str, Any]:
    """config.json of a BERT-architecture checkpoint; ConfigError naming what does not fit."""
    path = directory / "config.json"
    if not path.is_file():
        raise ConfigError("model.pretrained", f"no config.json in '{directory}' (expected a BERT-architecture "
                          "directory: config.json, model.safetensors, tokenizer.json or vocab.txt)")
    cfg = json.loads(path.read_text())
    kind = cfg.get("model_type")
    if kind not in ("bert", None):
        raise ConfigError("model.pretrained", f"'{directory}' holds a {kind!r} model; only BERT-architecture "
                          "encoders (bert, MiniLM, ...) load into model=transformer")
    if cfg.get("hidden_act", "gelu") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError("model.pretrained", f"'{directory}': hidden_act={cfg.get('hidden_act')!r}, "
                          f"position_embedding_type={cfg.get('position_embedding_type')!r}; supported: gelu, absolute")
    return cfg


def load_pretrained_weights(model: TextModel, directory: Path) -> None:
    """Copy a BERT checkpoint's encoder weights (model.safetensors or pytorch_model.bin) into
    ``model.encoder``; the head stays freshly initialised."""
    st = directory / "model.safetensors"
    if st.is_file():
        from safetensors.torch import load_file

        try:
            state = load_file(str(st))
        except Exception as exc:  # noqa: BLE001 - corrupt / truncated file
            raise DataError(f"cannot read safetensors weights ({exc})", file=str(st)) from None
    elif (directory / "pytorch_model.bin").is_file():
        state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ConfigError("model.pretrained", f"no model.safetensors or pytorch_model.bin in '{directory}'")
    renamed = {}
    for key, value in state.items():
        key = key[5:] if key.startswith("bert.") else key
        if key.startswith(("pooler.", "cls.")) or key.endswith("position_ids"):
            continue  # BERT's NSP pooler and MLM head: not part of the encoder
        renamed[key.replace(".attention.self.", ".attention.core.")] = value
    own = model.encoder.state_dict()
    missing = [k for k in own if k not in renamed]
    unexpected = [k for k in renamed if k not in own]
    if missing or unexpected:
        raise DataError(f"weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}",
                        file=str(directory))
    bad = [k for k in own if tuple(own[k].shape) != tuple(renamed[k].shape)]
    if bad:
        raise DataError(f"weight shapes differ from config.json: {bad[:5]}", file=str(directory))
    model.encoder.load_state_dict(renamed)
