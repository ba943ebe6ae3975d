"""The PyTorch backend: train loop, evaluation, checkpoints and export for easyrec models."""
