r"""Data-parallel NMF with :mod:`torch.distributed`: columns split across ranks, W replicated.

Rank p holds a block of columns X_p (m x n_p) and its block H_p (r x n_p); every rank
holds the same W (m x r). One outer iteration (W then H, the order of the in-memory
solvers):

1. each rank computes the local W-update statistics from (X_p, W, H_p) and they are
   summed over the ranks with **one** ``all_reduce`` (a single flat buffer);
2. every rank applies the same W update to its replica (same input, same result);
3. each rank updates its H_p, which depends only on X_p and W (column-separable).

The W-update statistics are pluggable (:class:`WStatistics`):

- :class:`FrobeniusHALSStatistics`: X H^T (m x r) and H H^T (r x r), i.e. m r + r^2
  numbers per iteration; W and H by one HALS sweep each (the same iterates as
  ``NMF(solver="hals", alpha=0, scale_init=False)``);
- :class:`KLMUStatistics`: the numerator and the denominator of the multiplicative
  update of W for the KL divergence, 2 m r numbers (the same iterates as
  ``NMF(loss="kl", solver="mu")``).

- :class:`L1CDStatistics`: (weighted) L1-NMF by the sparse coordinate descent of
  ``NMF(loss="l1" | "wl1", solver="scd")`` (H sweep, then W sweep). The H sweep is
  column-separable, hence local. The W sweep sets each :math:`W_{ip}` to a weighted
  median over *all* n columns, which is not a sum: it is computed by an exact
  distributed selection (:func:`torchnmf_l1.kernels.weighted_median_select`) in which
  no breakpoint leaves its rank. Per coordinate p, about log2(nnz per row of X_p)
  rounds, each an all-gather of m numbers per rank and an all-reduce of 2 P m numbers;
  the iterates equal the single-process ones (up to round-off in exact ties).

Launch with ``torchrun --nproc-per-node=P script.py`` (which sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and call :func:`init_distributed`;
backends ``"gloo"`` (CPU) and ``"nccl"`` (GPU, one device per rank). A rank that dies
makes the collectives of the others fail within ``timeout`` seconds: the error is raised
as :class:`DistributedFitError` naming the rank, the iteration and the cause.

References
----------
N. Gillis and F. Glineur, "Accelerated multiplicative updates and hierarchical ALS
algorithms for nonnegative matrix factorization", Neural Computation 24(4), 2012.
C. Févotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
beta-divergence", Neural Computation 23(9), 2011.
R. Kannan, G. Ballard and H. Park, "A high-performance parallel algorithm for
nonnegative matrix factorization", PPoPP 2016.
A. Saukas and S. W. Song, "A note on parallel selection on coarse-grained
multicomputers", Algorithmica 24, 1999.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import Tensor

from . import kernels
from .data import prepare_data
from .problem import Penalties, resolve_loss
from .solvers.l1_cd import SparseL1State

__all__ = [
    "DistributedFitError",
    "DistributedNMFSolver",
    "FrobeniusHALSStatistics",
    "KLMUStatistics",
    "L1CDStatistics",
    "WStatistics",
    "column_range",
    "init_distributed",
]


class DistributedFitError(RuntimeError):
    """A collective failed: a peer rank died, timed out or left the process group."""


def init_distributed(backend: str | None = None, *, timeout: float = 60.0) -> tuple[int, int]:
    """Join the process group from the ``torchrun`` environment; returns ``(rank, world_size)``.

    ``timeout`` (seconds) bounds every collective: a rank that dies makes the others fail
    instead of hanging. ``backend`` defaults to ``"nccl"`` when CUDA is present, else ``"gloo"``.
    """
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl", "mpi"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or 'mpi', got {backend!r}")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count())))
    return dist.get_rank(), dist.get_world_size()


def column_range(n: int, world_size: int, rank: int) -> tuple[int, int]:
    """The columns ``[start, stop)`` of rank ``rank``: n split into near-equal contiguous blocks."""
    if not (0 <= rank < world_size):
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class WStatistics:
    """How a loss updates W from all-reduced statistics and H_p locally.

    Subclasses implement :meth:`local` (tensors summed over the ranks), :meth:`update_W_`
    (from the summed tensors, the same on every rank), :meth:`update_H_` (local) and
    :meth:`local_objective` (summed over the ranks at convergence checks); or override
    :meth:`step_` when one all-reduce per iteration does not describe the update.
    """

    loss = "none"

    def attach(self, solver: "DistributedNMFSolver") -> None:
        """Called once by the solver (collectively on every rank) before the first step."""

    def factors_changed(self, solver: "DistributedNMFSolver") -> None:
        """Called when W and H were overwritten (resume from a checkpoint): refresh any state."""

    def step_(self, solver: "DistributedNMFSolver") -> None:
        """One outer iteration: all-reduce the W statistics, update W, then the local H."""
        reduced = solver.reduce(self.local(solver.X, solver.W, solver.H), "W-update statistics")
        self.update_W_(solver.W, reduced)
        self.update_H_(solver.X, solver.W, solver.H)

    def local(self, X: Tensor, W: Tensor, H: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_W_(self, W: Tensor, reduced: list[Tensor]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_H_(self, X: Tensor, W: Tensor, H: Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def local_objective(self, X: Tensor, W: Tensor, H: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class FrobeniusHALSStatistics(WStatistics):
    r"""Frobenius loss :math:`\tfrac12\|X - WH\|_F^2`, one HALS sweep per factor.

    Statistics: X_p H_p^T (m x r) and H_p H_p^T (r x r).
    """

    loss = "frobenius"

    def local(self, X, W, H):
        return [kernels.x_ht(X, H), kernels.gram(H, transpose=True)]

    def update_W_(self, W, reduced):
        XHt, HHt = reduced
        Wt = W.transpose(0, 1).contiguous()
        kernels.hals_nnls_(Wt, XHt.transpose(0, 1), HHt, max_sweeps=1, delta=0.0, keep_rows_positive=True)
        W.copy_(Wt.transpose(0, 1))

    def update_H_(self, X, W, H):
        # keep_rows_positive looks at a whole row of H, which a rank does not see: off here.
        kernels.hals_nnls_(H, kernels.wt_x(W, X), kernels.gram(W), max_sweeps=1, delta=0.0)

    def local_objective(self, X, W, H):
        return kernels.frobenius_loss(X, W, H)


class KLMUStatistics(WStatistics):
    r"""KL divergence :math:`\sum X \log(X / WH) - X + WH`, multiplicative updates.

    Statistics: numerator :math:`H_p (X_p / W H_p)^T` and denominator :math:`H_p 1` of
    the update of W^T (both r x m).
    """

    loss = "kl"

    def local(self, X, W, H):
        num, den = kernels.beta_mu_ratio_terms(X.transpose(0, 1), H.transpose(0, 1), W.transpose(0, 1), 1.0)
        return [num, den]

    def update_W_(self, W, reduced):
        num, den = reduced
        kernels.mu_update_(W.transpose(0, 1), num, den, kernels.mu_exponent(1.0))

    def update_H_(self, X, W, H):
        num, den = kernels.beta_mu_ratio_terms(X, W, H, 1.0)
        kernels.mu_update_(H, num, den, kernels.mu_exponent(1.0))

    def local_objective(self, X, W, H):
        return kernels.kl_divergence(X, W, H)


class L1CDStatistics(WStatistics):
    r"""(Weighted) L1 loss by exact coordinate descent, the iterates of ``solver="scd"``.

    .. math:: \sum_{(i,j)\in\Omega} |X_{ij} - (WH)_{ij}| + \lambda \sum_{(i,j)\notin\Omega} (WH)_{ij}
              + \lambda^{(1)}_W \|W\|_1 + \lambda^{(1)}_H \|H\|_1

    with :math:`\Omega` the nonzeros of X. One iteration: the H sweep on the local
    columns (local), then the W sweep, whose weighted medians are selected across the
    ranks (:func:`torchnmf_l1.kernels.weighted_median_select`). Each rank keeps the
    residual on the support of its own columns only; nothing of size nnz is communicated.
    One instance per solver (it holds that solver's support and residual).

    Parameters
    ----------
    zero_weight : float
        :math:`\lambda \ge 0` (1: plain L1-NMF).
    l1_reg_W, l1_reg_H : float
        L1 penalties (>= 0).
    """

    def __init__(self, zero_weight: float = 1.0, *, l1_reg_W: float = 0.0, l1_reg_H: float = 0.0):
        self.lam = resolve_loss("wl1", zero_weight=zero_weight).zero_weight
        self.loss = "l1" if self.lam == 1.0 else "wl1"
        self.penalties = Penalties(l1_W=l1_reg_W, l1_H=l1_reg_H)
        self.solver = None

    def attach(self, solver):
        if self.solver is not None:
            raise ValueError("an L1CDStatistics instance holds one solver's residual: create one per solver")
        X = solver.X
        negative = (kernels.sparse_values(X) if kernels.is_sparse(X) else X) < 0
        if bool(negative.any()):
            raise ValueError(f"X must be nonnegative for the L1 loss; rank {solver.rank} holds {int(negative.sum())} negative entries")
        self.solver = solver
        # validated (finite) and without stored zeros, which would count as support
        self.state = SparseL1State(prepare_data(X, device=X.device, dtype=X.dtype), solver.W, solver.H)
        offsets = self.state.offsets
        longest = (offsets[1:] - offsets[:-1]).max() + 1 if offsets.numel() > 1 else offsets.new_ones(())
        (longest,) = solver.reduce([longest.reshape(1).to(solver.W.dtype)], "longest row length", op=dist.ReduceOp.MAX)
        self.rounds = kernels.selection_rounds(int(longest[0]))

    def factors_changed(self, solver):
        self.state.reset_residual(solver.W, solver.H)

    def _median(self, b, w, offsets, *, extra_weight, default, layout):
        solver = self.solver
        share = kernels.sort_segments(b, w, layout, extra_weight=extra_weight)
        return kernels.weighted_median_select(
            share,
            all_reduce=lambda t: solver.reduce([t], "weighted-median counts")[0],
            all_gather=lambda t: solver.gather(t, "weighted-median pivots"),
            rounds=self.rounds,
            default=default,
        )

    def step_(self, solver):
        self.state.sweep_H_(solver.W, solver.H, zero_weight=self.lam, l1=self.penalties.l1_H)
        # the W penalty is one more weight on the breakpoint at 0: added once, by rank 0
        self.state.sweep_W_(solver.W, solver.H, zero_weight=self.lam,
                            l1=self.penalties.l1_W if solver.rank == 0 else 0.0, median=self._median)

    def local_objective(self, X, W, H):
        data = self.state.data
        value = kernels.weighted_l1_loss(data.X, W, H, self.lam, data.support)
        value = value + self.penalties.l1_H * H.sum()
        if self.solver.rank == 0:
            value = value + self.penalties.l1_W * W.sum()
        return value


class DistributedNMFSolver:
    """One rank's share of a data-parallel NMF fit, for :func:`torchnmf_l1.fit.run_fit`.

    Parameters
    ----------
    X : Tensor, shape (m, n_p)
        This rank's columns (dense; torch.sparse also for :class:`L1CDStatistics`).
    W : Tensor, shape (m, r)
        Replicated factor, identical on every rank at the start (updated in place).
    H : Tensor, shape (r, n_p)
        This rank's block of H (updated in place).
    statistics : WStatistics
        The loss and its updates (default Frobenius / HALS).
    group : ProcessGroup, optional
        Default: the world.

    Attributes
    ----------
    bytes_all_reduced : int
        Bytes this rank passed to ``all_reduce`` so far (one flat buffer per iteration
        and one scalar per objective evaluation for Frobenius and KL).
    bytes_all_gathered : int
        Bytes this rank contributed to ``all_gather`` (the L1 solver's median pivots).
    """

    name = "distributed"

    def __init__(self, X: Tensor, W: Tensor, H: Tensor, *, statistics: WStatistics | None = None, group=None):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: call init_distributed() first")
        if X.dim() != 2 or W.dim() != 2 or H.dim() != 2:
            raise ValueError(f"X, W, H must be 2-D, got shapes {tuple(X.shape)}, {tuple(W.shape)}, {tuple(H.shape)}")
        if X.shape[0] != W.shape[0] or W.shape[1] != H.shape[0] or X.shape[1] != H.shape[1]:
            raise ValueError(
                f"shapes do not match: X {tuple(X.shape)}, W {tuple(W.shape)}, H {tuple(H.shape)} (expected X ≈ W H)"
            )
        self.X, self.W, self.H = X, W, H
        self.statistics = statistics if statistics is not None else FrobeniusHALSStatistics()
        self.name = f"distributed-{self.statistics.loss}"
        self.group = group
        self.rank = dist.get_rank(group)
        self.iteration = 0
        self.bytes_all_reduced = 0
        self.bytes_all_gathered = 0
        self.statistics.attach(self)

    def _collective(self, name: str, what: str, call) -> None:
        try:
            call()
        except Exception as exc:  # gloo/NCCL raise RuntimeError or DistBackendError subclasses
            raise DistributedFitError(
                f"rank {self.rank}: {name} of the {what} failed at iteration {self.iteration}: a peer rank "
                f"died, left, or did not answer within the process-group timeout ({type(exc).__name__}: {exc})"
            ) from exc

    def reduce(self, tensors: list[Tensor], what: str, op=dist.ReduceOp.SUM) -> list[Tensor]:
        """Sum (or ``op``) ``tensors`` over the ranks with one all_reduce of a flat buffer."""
        flat = torch.cat([t.reshape(-1) for t in tensors])
        self.bytes_all_reduced += flat.numel() * flat.element_size()
        self._collective("all_reduce", what, lambda: dist.all_reduce(flat, op=op, group=self.group))
        out, offset = [], 0
        for t in tensors:
            out.append(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()
        return out

    def gather(self, tensor: Tensor, what: str) -> Tensor:
        """``tensor`` of every rank, stacked: shape ``(world_size, *tensor.shape)``."""
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(self.group))]
        self.bytes_all_gathered += tensor.numel() * tensor.element_size()
        self._collective("all_gather", what, lambda: dist.all_gather(parts, tensor, group=self.group))
        return torch.stack(parts)

    def step(self) -> None:
        self.iteration += 1
        self.statistics.step_(self)

    def objective(self) -> Tensor:
        (total,) = self.reduce([self.statistics.local_objective(self.X, self.W, self.H).reshape(1)], "objective")
        return total[0]

    def state_dict(self) -> dict:
        return {"W": self.W.clone(), "H": self.H.clone(), "iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.W.copy_(state["W"])
        self.H.copy_(state["H"])
        self.iteration = int(state["iteration"])
        self.statistics.factors_changed(self)
