"""Data-parallel training under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m ddlib run ...`` starts N processes with
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` set; the CLI reads them once
(:class:`ddlib.run.settings.Settings`) and :func:`init` joins the processes in
one process group (gloo on CPU, nccl on CUDA, one GPU per process), returning
the :class:`DistInfo` that is then passed explicitly: to the store
(``Store(root, sync=info)``), to :func:`ddlib.engine.train.fit` (``dist=``) and
to the teachers (:func:`ddlib.engine.teachers.get_teacher`).
Every process then runs the same program on the same data; only the two
trainings that dominate a run are split across processes: the teachers' and
the student's evaluation training.

Equivalence with one process: every rank draws the same seeded global batch
of ``B`` samples and the same augmentation, then forwards only its contiguous
slice ``[B*r/N, B*(r+1)/N)``.  The slice loss is weighted by ``n_r * N / B``
so DDP's gradient *average* over ranks is the gradient of the global batch
mean, and SGD steps equal the single-process ones up to float rounding
(instance norm or no norm: samples are independent in the forward pass).
Batch norm couples the samples of a batch: on CUDA it becomes SyncBatchNorm
(global batch statistics, equal to one process); PyTorch has no CPU
SyncBatchNorm, so with gloo each rank normalises with its own slice's
statistics and results differ from one process (a warning says so).

Only rank 0 writes rows and artifacts (:class:`ddlib.core.store.Store` asks its
``sync``, a :class:`DistInfo`: :meth:`DistInfo.is_writer`), and every write ends
with a barrier.  Whether a cache entry exists is decided by rank 0 and
broadcast (:meth:`DistInfo.agree`): a rank that looked
for itself could find the file rank 0 has just written and skip the build and
its barrier, and the ranks' collective calls would no longer pair up.  So all
ranks take the same cache hits and misses, hence the same sequence of
collective calls.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as tdist
import torch.nn as nn

from ddlib.engine.regimes import Batch, slice_loss


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the process group.

    Attributes:
        rank: global rank in [0, world).
        world: number of processes.
        local_rank: rank on this machine (its CUDA device index).
        device: "cpu" or "cuda:<local_rank>".
        backend: "gloo" or "nccl".
    """

    rank: int
    world: int
    local_rank: int
    device: str
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous slice of a global batch of ``n`` samples."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    # -- the store's coordination (ddlib.core.store.Sync) ------------------
    def is_writer(self) -> bool:
        """True on rank 0: the one process that writes the store."""
        return self.is_main

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.backend == "nccl":
            tdist.barrier(device_ids=[self.local_rank])
        else:
            tdist.barrier()

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank; a collective call."""
        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device)
        tdist.broadcast(t, src=0)
        return bool(t.item())

    def all_sum(self, x: float) -> float:
        """Sum of ``x`` over the ranks; a collective call."""
        t = torch.tensor([float(x)], dtype=torch.float64, device=self.device)
        tdist.all_reduce(t)
        return float(t.item())


def init(rank: int, world: int, local_rank: int, device: Optional[str] = None) -> DistInfo:
    """Join the process group of ``world`` processes as ``rank`` (torchrun's ``RANK`` etc.).

    The rendezvous address comes from torchrun's ``MASTER_ADDR`` / ``MASTER_PORT``
    (read by ``torch.distributed`` itself).  Call once per process, then
    :func:`shutdown` the returned group.

    Args:
        device: "cpu" forces gloo on CPU; None or "cuda" means one GPU per
            local rank when CUDA is present (nccl), else CPU (gloo).
    """
    cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if cuda:
        torch.cuda.set_device(local_rank)
    dev, backend = (f"cuda:{local_rank}", "nccl") if cuda else ("cpu", "gloo")
    tdist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, dev, backend)


def shutdown(info: Optional[DistInfo]) -> None:
    """Leave the process group ``info`` joined (nothing when None)."""
    if info is not None and tdist.is_initialized():
        tdist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo) -> nn.Module:
    """``model`` (already on ``info.device``) in DistributedDataParallel.

    Batch-norm layers become SyncBatchNorm on CUDA (converted in place, so the
    caller's ``model`` trains); on CPU they keep per-rank statistics.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn and info.backend == "nccl":
        _swap_bn(model, to_sync=True)
    elif has_bn and info.is_main:
        warnings.warn("batch norm under gloo uses each rank's own slice statistics (no CPU "
                      "SyncBatchNorm): results differ from a single-process run", stacklevel=2)
    ids = [info.local_rank] if info.backend == "nccl" else None
    return DDP(model, device_ids=ids)


def unwrap(model: nn.Module) -> None:
    """Undo :func:`wrap`'s SyncBatchNorm conversion in place (same state dict keys)."""
    _swap_bn(model, to_sync=False)


def _swap_bn(model: nn.Module, to_sync: bool) -> None:
    for name, child in list(model.named_children()):
        if to_sync and isinstance(child, nn.modules.batchnorm._BatchNorm) \
                and not isinstance(child, nn.SyncBatchNorm):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        elif not to_sync and isinstance(child, nn.SyncBatchNorm):
            bn = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                child.track_running_stats).to(next(iter(child.buffers())).device)
            bn.load_state_dict(child.state_dict())
            bn.train(child.training)
            setattr(model, name, bn)
        else:
            _swap_bn(child, to_sync)


def shard_loss(net: nn.Module, regime, batch: Batch, info: DistInfo) -> torch.Tensor:
    """This rank's share of the global batch loss (see the module docstring).

    Args:
        net: the DDP-wrapped student.
        regime: the run's label regime (its ``batch_loss`` is a mean over the batch).
        batch: the global batch (:meth:`ddlib.engine.regimes.Regime.batch`; same on every rank).

    Returns:
        scalar ``loss(slice) * n_r * N / B``; DDP's average of the gradients of
        these is the gradient of the global batch's mean loss.
    """
    n = len(batch)
    sl = info.shard(n)
    weight = (sl.stop - sl.start) * info.world / n
    if sl.stop == sl.start:  # more ranks than samples: a zero-weight sample keeps DDP's all-reduce in step
        sl, weight = slice(0, 1), 0.0
    return slice_loss(regime, net, batch, sl) * weight
