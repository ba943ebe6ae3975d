"""The PyTorch backend shared by every domain: the engine (steps, optimizers, DDP, autocast,
checkpoints), optimizers and schedules, tensors, fast paths and exported programs."""
