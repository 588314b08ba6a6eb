"""Data-parallel training across processes and machines, on PyTorch's own engine.

``torchrun --nproc-per-node N -m textrnn train ...`` starts N copies of the command with
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` set. Each copy joins the
process group (nccl on CUDA, gloo on CPU), reads its own streams of the token file
(:class:`textrnn.data.batches.LMBatches` with ``rank``/``world``), and trains a
``DistributedDataParallel`` model, whose backward pass averages the gradients. Only rank 0
writes the run directory and reports; validation losses are summed over the ranks.

Outside torchrun (no ``WORLD_SIZE``, or 1) everything here is a no-op.
"""

from __future__ import annotations

import datetime
import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

import torch

from ..errors import SharedError, TextRNNError

T = TypeVar("T")


@dataclass
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of ``values`` over the ranks (one collective)."""
        return self._all_reduce(values, device, "SUM")

    def all_max(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise maximum of ``values`` over the ranks (one collective)."""
        return self._all_reduce(values, device, "MAX")

    def _all_reduce(self, values: list[float], device: torch.device, op: str) -> list[float]:
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t, op=getattr(torch.distributed.ReduceOp, op))
        return t.tolist()

    def gather(self, obj: Any) -> Optional[list[Any]]:
        """Every rank's ``obj`` on rank 0 (None elsewhere)."""
        if not self.active:
            return [obj]
        out = [None] * self.world if self.is_main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every rank; if it raised a :class:`TextRNNError` on any rank, raise
        that error on all of them (so no rank waits forever for one that gave up)."""
        result, error = None, None
        try:
            result = fn()
        except TextRNNError as e:
            error = str(e)
        if self.active:
            errors = [None] * self.world
            torch.distributed.all_gather_object(errors, error)
            error = next((e for e in errors if e is not None), None)
        if error is not None:
            raise SharedError(error)
        return result

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def from_env() -> Dist:
    """The job's layout from torchrun's environment (a single process when absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise TextRNNError("WORLD_SIZE / RANK / LOCAL_RANK must be integers (as torchrun sets them)") from None
    return Dist(rank, world, local_rank)


def init(dist: Dist, device_type: str) -> Optional[torch.device]:
    """Join the process group (once); returns this rank's CUDA device, if any."""
    if not dist.active:
        return None
    if not torch.distributed.is_available():
        raise TextRNNError("this PyTorch build has no torch.distributed; install the standard build")
    device = None
    if device_type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        # In PyTorch 2.13, torch._dynamo imported after the group exists (the first optimizer
        # or DDP model imports it) registers the group where destroy_process_group cannot
        # free it: gloo's threads then outlive it and the process aborts at exit now and then
        # ("terminate called without an active exception"). Imported first, nothing leaks.
        importlib.import_module("torch._dynamo")

        backend = "nccl" if device_type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device is not None else {}
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(minutes=30), **kwargs)
    return device


def shutdown(wait: bool = True) -> None:
    """Leave the process group; with ``wait``, after every rank is done (gloo may abort a
    process that leaves while a peer is still writing its checkpoint)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if wait:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()
