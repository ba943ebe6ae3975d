"""``lingjie serve PATH``: an inference server for an export (KServe v1 + Open Inference Protocol).

Layout: ``repository`` resolves PATH to the export directory and version to serve and lists
a (local or fsspec) repository's versions, ``models`` holds the served model and swaps in new
versions (hot reload, pinning, rollback), ``app`` is the FastAPI app factory (protocols,
validation, error mapping), ``routes`` the endpoints, ``batching`` the dynamic micro-batcher that coalesces concurrent requests into one forward pass, ``metrics``
the Prometheus metrics, ``__main__`` the command line. Domain specifics (how a JSON instance
becomes model input) live in each domain's ``serving_adapter`` module, found through
:func:`trainer.domains.serving_adapter`; this package imports no domain.

The adapter interface every domain implements (``<domain>/serving_adapter.py`` defines ``Adapter``)::

    __init__(export_dir: Path)                          # loads the export (no training code)
    name_hint: str                                      # the experiment name if known, else ""
    check(instances: list) -> None                      # RequestError naming instances[i].<field>
    predict(instances: list) -> list[dict]              # one JSON-ready dict per instance
    v2_inputs_to_instances(inputs: list[dict]) -> list  # OIP tensors -> instances
    v2_outputs(predictions: list[dict]) -> list[dict]   # -> OIP tensors {name, shape, datatype, data}
    example_instances() -> list                         # valid rows for the warm-up pass

Optionally, delta exports (the rec adapter): ``delta_step``, ``pending_deltas()`` and
``with_delta(path)``, see :mod:`trainer.serve.deltas`; ``deltas`` (in the layout above) applies them.
"""
