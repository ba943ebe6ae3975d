"""Dynamic embedding tables (DeepRec's EmbeddingVariable, on stock PyTorch).

A feature with a ``dynamic:`` block (``easyrec.dynamic.config``) is looked up by its raw
64-bit id (``keys``) in a table that grows and shrinks while training:

* ``index``     an open-addressing hash index in torch tensors (vectorised linear probing):
                key -> slot, with per-slot metadata (count, last step seen, tier, row).
* ``admission`` ids get a row only after ``min_count`` sightings, counted exactly (a slot
                without a row) or by a counting Bloom filter (fixed memory).
* ``tiers``     the rows (embedding + the row-wise optimizer state, side by side so a row
                moves with its state) in device memory, host memory or a np.memmap file.
* ``table``     DynamicTable: lookup, row-wise optimizer updates, admission, eviction (ttl,
                l2 norm, capacity with LFU/LRU), tier rebalancing, state and export.
* ``mover``     tier rebalancing plans: ranking and gathering the rows to move in a worker
                thread (``storage.background``), applied by the training thread at a fixed step.
* ``module``    the nn.Modules: DynamicEmbedding (training/eval lookup, used by
                easyrec.models.torch.embedding.EmbeddingCollection) and its scriptable frozen
                twin for export.
* ``engine``    DynamicTables: the engine's hook after each optimizer step (applies the row
                gradients; under DDP all ranks apply the same all-gathered updates).

This package's ``__init__`` and ``config`` / ``keys`` import no torch (config validation and
the feature pipeline stay light).
"""
