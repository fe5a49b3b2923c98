r"""Data-parallel NMF with :mod:`torch.distributed`: columns split across ranks, W replicated.

Launch with ``torchrun --nproc-per-node=P script.py`` (which sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), call :func:`init_distributed`, take
this rank's columns with :func:`column_range` and fit them::

    rank, world = init_distributed(timeout=60)
    a, b = column_range(n, world, rank)
    solver = DistributedNMFSolver(X[:, a:b], W, H[:, a:b], loss="frobenius")   # or "kl", "l1", "wl1"
    result = run_fit(solver, max_iter=200)

The solvers are registered in family ``"distributed"`` (``"hals"``, ``"mu"``, ``"scd"``;
:mod:`torchnmf_l1.solvers.distributed` has the algorithms and their communication);
backends ``"gloo"`` (CPU) and ``"nccl"`` (GPU, one device per rank). A rank that dies
makes the collectives of the others fail within ``timeout`` seconds: the error is raised
as :class:`DistributedFitError` naming the rank, the iteration and the cause.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import Tensor

from .checks import dense_tensor
from .exceptions import DistributedFitError
from .missing import prepare_weighted
from .problem import DistributedProblem, FactorState, Penalties, resolve_loss
from .registry import default_solver, get_solver

__all__ = ["DistributedFitError", "DistributedNMFSolver", "column_range", "init_distributed"]


def init_distributed(backend: str | None = None, *, timeout: float = 60.0) -> tuple[int, int]:
    """Join the process group from the ``torchrun`` environment; returns ``(rank, world_size)``.

    ``timeout`` (seconds) bounds every collective: a rank that dies makes the others fail
    instead of hanging. ``backend`` defaults to ``"nccl"`` when CUDA is present, else ``"gloo"``.
    """
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl", "mpi"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or 'mpi', got {backend!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count())))
    return dist.get_rank(), dist.get_world_size()


def column_range(n: int, world_size: int, rank: int) -> tuple[int, int]:
    """The columns ``[start, stop)`` of rank ``rank``: n split into near-equal contiguous blocks."""
    for name, value, low in (("n", n, 0), ("world_size", world_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not (0 <= rank < world_size):
        raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def DistributedNMFSolver(
    X,
    W: Tensor,
    H: Tensor,
    *,
    loss: str = "frobenius",
    zero_weight: float | None = None,
    solver: str | None = None,
    l1_reg_W: float = 0.0,
    l2_reg_W: float = 0.0,
    l1_reg_H: float = 0.0,
    l2_reg_H: float = 0.0,
    group=None,
    mask=None,
    weights=None,
    **options,
):
    """One rank's share of a data-parallel NMF fit: the registered ``family="distributed"`` solver.

    Parameters
    ----------
    X : Tensor, shape (m, n_p)
        This rank's columns (dense or torch.sparse, never densified), nonnegative.
    W : Tensor, shape (m, r)
        Replicated factor, identical on every rank at the start (updated in place).
    H : Tensor, shape (r, n_p)
        This rank's block of H (updated in place).
    loss : {"frobenius", "kl", "l1", "wl1"}
    zero_weight : float, optional
        lambda of the ``"wl1"`` loss.
    solver : str, optional
        Default: the family's solver for the loss (``"hals"``, ``"mu"``, ``"scd"``).
    l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H : float
        Penalties (>= 0).
    group : ProcessGroup, optional
        Default: the world.
    mask, weights : array-like, shape (m, n_p), optional
        This rank's mask (True = observed) and entry weights (>= 0), dense; with either (or NaN
        entries in a dense X), the weighted Frobenius loss over the observed entries
        (``solver="hals"`` only: its statistics become the per-row Grams, m r^2 + m r numbers
        per iteration).

    Returns
    -------
    A solver for :func:`torchnmf_l1.fit.run_fit` (``bytes_all_reduced``, ``bytes_all_gathered``
    count what it sent).
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call init_distributed() first")
    resolved = resolve_loss(loss, zero_weight=zero_weight)
    name = solver if solver is not None else default_solver(resolved.name, family="distributed")
    solver_cls = get_solver(name, family="distributed")
    for label, F in (("W", W), ("H", H)):
        if not isinstance(F, Tensor) or F.layout != torch.strided or not F.is_floating_point():
            raise TypeError(f"{label} must be a dense floating-point torch tensor (updated in place), got {type(F).__name__}"
                            + (f" of dtype {F.dtype}" if isinstance(F, Tensor) else ""))
        dense_tensor(F, label)  # 2-D, not empty, not on the meta device, finite, nonnegative
    if W.dtype != H.dtype or W.device != H.device:
        raise ValueError(f"W and H must share dtype and device, got {W.dtype} on {W.device} and {H.dtype} on {H.device}")
    if isinstance(X, Tensor) and X.device.type == "meta":
        raise ValueError("X is on the meta device, which holds no values; give a tensor with data")
    if isinstance(X, Tensor) and X.device != W.device:
        raise ValueError(f"X is on {X.device} but W is on {W.device}; move them to one device")
    data, weight_data, _ = prepare_weighted(X, mask, weights, device=W.device, dtype=W.dtype,
                                            positive=resolved.needs_positive_data)
    if weight_data is not None and weight_data.sparse:
        raise ValueError("the data-parallel weighted fit needs a dense X and dense mask / weights on each rank")
    problem = DistributedProblem(data, resolved, Penalties(l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H), group, weight_data)
    return solver_cls(problem, FactorState(W, H), **options)

