"""Launchers: materialise a job on an existing distributed engine (torchrun's elastic agent,
TF multi-worker processes, a Kubernetes Training Operator manifest) — never a home-made one;
and the Kubernetes serving manifests (a Deployment + Service, a KServe InferenceService)."""
