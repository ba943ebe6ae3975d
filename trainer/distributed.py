"""Who am I in a distributed job, and the few collectives the loop needs.

Workers are started by an existing engine — torchrun's elastic agent (torch) or one process
per TF_CONFIG task (TF) — never a home-made one; this module only reads their environment.
Every rank reads its own shard; rank 0 alone writes logs, checkpoints, metrics and exports.
Evaluation gathers every rank's predictions, so metrics cover the whole eval set.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class DistContext:
    """Rank facts; ``kind`` is ``none`` (one process), ``torch`` or ``tf``."""

    kind: str = "none"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restart_count: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """A process group exists: several workers, or any torchrun-launched one (a DDP job of
        one GPU still runs nccl + DDP, exactly as it will with more)."""
        return self.world_size > 1 or self.kind == "torch"

    @staticmethod
    def from_env() -> "DistContext":
        """Read torchrun's (RANK, WORLD_SIZE, LOCAL_RANK, TORCHELASTIC_RESTART_COUNT) or TF_CONFIG."""
        env = os.environ
        if "TF_CONFIG" in env and env.get("LINGJIE_BACKEND", "tf") == "tf":
            cfg = json.loads(env["TF_CONFIG"])
            workers = cfg.get("cluster", {}).get("worker", [])
            task = cfg.get("task", {})
            rank = int(task.get("index", 0)) + (1 if task.get("type") == "chief" else 0) \
                if "chief" in cfg.get("cluster", {}) else int(task.get("index", 0))
            size = len(workers) + len(cfg.get("cluster", {}).get("chief", []))
            return DistContext("tf", rank, max(1, size), 0, 0)
        if "WORLD_SIZE" in env and (int(env["WORLD_SIZE"]) > 1 or "TORCHELASTIC_RUN_ID" in env):
            return DistContext("torch", int(env.get("RANK", 0)), int(env["WORLD_SIZE"]),
                               int(env.get("LOCAL_RANK", 0)), int(env.get("TORCHELASTIC_RESTART_COUNT", 0)))
        return DistContext()

    # ----- collectives (torch: gloo/nccl process group; TF: MultiWorkerMirroredStrategy's) -----
    def init_torch(self, device_type: str) -> None:
        import torch.distributed as dist

        if self.kind != "torch" or dist.is_initialized():
            return
        backend = "nccl" if device_type == "cuda" else "gloo"
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # Under torchrun the agent's store outlives a group restart; keys of the dead attempt
            # (peer addresses) would be read by the new one (gloo then dials dead ports). A prefix
            # per restart keeps every attempt's rendezvous keys apart.
            from datetime import timedelta

            store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), self.world_size,
                                  is_master=False, timeout=timedelta(minutes=5))
            dist.init_process_group(backend, store=dist.PrefixStore(f"lingjie/restart{self.restart_count}", store),
                                    rank=self.rank, world_size=self.world_size)
        else:
            dist.init_process_group(backend)

    def init_tf(self) -> None:
        """Create the MultiWorkerMirroredStrategy; must precede every other TF op of the process."""
        if self.kind == "tf":
            from trainer import tf_strategy as multiworker

            multiworker.strategy()

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed or self.kind not in ("torch", "tf"):
            return [obj]
        if self.kind == "tf":
            import pickle

            from trainer import tf_strategy as multiworker

            parts = multiworker.all_gather_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
            return [pickle.loads(p) for p in parts]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks."""
        parts = self.all_gather_object(list(values))
        return list(np.sum(np.asarray(parts, dtype=np.float64), axis=0))

    def barrier(self) -> None:
        if self.kind == "torch" and self.distributed:
            import torch.distributed as dist

            dist.barrier()
        elif self.kind == "tf" and self.distributed:
            from trainer import tf_strategy as multiworker

            multiworker.barrier()

    def shutdown(self) -> None:
        if self.kind == "torch":
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
