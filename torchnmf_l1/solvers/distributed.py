r"""Data-parallel NMF solvers over :mod:`torch.distributed`: columns split across ranks, W replicated.

Rank p holds a block of columns X_p (m x n_p) and its block H_p (r x n_p); every rank
holds the same W (m x r). One outer iteration (W then H, the order of the in-memory
solvers):

1. each rank computes the local W-update statistics from (X_p, W, H_p) and they are
   summed over the ranks with **one** ``all_reduce`` (a single flat buffer);
2. every rank applies the same W update to its replica (same input, same result);
3. each rank updates its H_p, which depends only on X_p and W (column-separable).

Registered in family ``"distributed"``:

- ``"hals"`` (Frobenius): X H^T (m x r) and H H^T (r x r), i.e. m r + r^2 numbers per
  iteration; W and H by one HALS sweep each (the iterates of
  ``NMF(solver="hals", alpha=0, scale_init=False)``);
- ``"mu"`` (KL): the numerator and the denominator of the multiplicative update of W,
  2 m r numbers (the iterates of ``NMF(loss="kl", solver="mu")``);
- ``"scd"`` (L1 and weighted L1): the sparse coordinate descent of
  ``NMF(loss="l1" | "wl1", solver="scd")``. The H sweep is column-separable, hence local;
  the W sweep sets each :math:`W_{ip}` to a weighted median over *all* n columns, found by
  an exact distributed selection (:func:`torchnmf_l1.kernels.weighted_median_select`) in
  which no breakpoint leaves its rank: per coordinate p, about log2(nnz per row of X_p)
  rounds, each an all-gather of m numbers per rank and an all-reduce of 2 P m numbers.

A collective that fails (a peer died, or did not answer within the process group's
timeout) raises :class:`~torchnmf_l1.exceptions.DistributedFitError` naming the rank, the
iteration and the cause. The W update reads the device only through the collectives.

References
----------
R. Kannan, G. Ballard and H. Park, "A high-performance parallel algorithm for
nonnegative matrix factorization", PPoPP 2016.
A. Saukas and S. W. Song, "A note on parallel selection on coarse-grained
multicomputers", Algorithmica 24, 1999.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.distributed as dist
from torch import Tensor

from .. import kernels
from ..data import prepare_data
from ..exceptions import DistributedFitError
from ..fit import FitDefaults
from ..problem import DistributedProblem, FactorState
from ..registry import register_solver
from .base import Solver, SolverOutput
from .l1_cd import SparseL1State

__all__ = ["DistributedSolver", "DistributedHALS", "DistributedKLMU", "DistributedL1CD"]


class DistributedSolver(Solver):
    """Base of the data-parallel solvers: collectives with clear errors and byte counts.

    The state's W (replicated) and H (this rank's columns) are updated in place.

    Attributes
    ----------
    bytes_all_reduced : int
        Bytes this rank passed to ``all_reduce`` so far (one flat buffer per iteration
        and one scalar per objective evaluation for Frobenius and KL).
    bytes_all_gathered : int
        Bytes this rank contributed to ``all_gather`` (the L1 solver's median pivots).
    """

    family = "distributed"
    monotone = True
    supports_sparse = True
    losses: ClassVar[frozenset] = frozenset()
    fit_defaults = FitDefaults(max_iter=200, tol=1e-4, check_every=10)

    def __init__(self, problem: DistributedProblem, state: FactorState, **options):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: call init_distributed() first")
        super().__init__(problem, state, **options)
        X, W, H = problem.data.X, state.W, state.H
        if W.dim() != 2 or H.dim() != 2:
            raise ValueError(f"W and H must be 2-D, got shapes {tuple(W.shape)} and {tuple(H.shape)}")
        if X.shape[0] != W.shape[0] or W.shape[1] != H.shape[0] or X.shape[1] != H.shape[1]:
            raise ValueError(
                f"shapes do not match: X {tuple(X.shape)}, W {tuple(W.shape)}, H {tuple(H.shape)} (expected X ≈ W H)"
            )
        self.data = problem.data
        self.X, self.W, self.H = X, W, H
        self.group = problem.group
        self.rank = dist.get_rank(self.group)
        self.iteration = 0
        self.bytes_all_reduced = 0
        self.bytes_all_gathered = 0

    supports_weights: ClassVar[bool] = False

    @classmethod
    def check_problem(cls, problem: DistributedProblem) -> None:
        if problem.loss.name not in cls.losses:
            raise ValueError(f"solver {cls.name!r} does not handle loss {problem.loss.name!r}; it handles {sorted(cls.losses)}")
        if problem.weights is not None and not cls.supports_weights:
            raise ValueError(f"data-parallel solver {cls.name!r} does not take missing entries or weights; "
                             "the Frobenius solver 'hals' does")

    def _device(self) -> torch.device:
        return self.W.device

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
        self.iterate()

    def iterate(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def local_objective(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def objective(self) -> Tensor:
        (total,) = self.reduce([self.local_objective().reshape(1)], "objective")
        return total[0]

    def _penalties(self) -> Tensor:
        """This rank's share of the penalties: its H's, and W's once (on rank 0)."""
        pen = self.problem.penalties
        value = pen.value_H(self.H)
        return value + pen.value_W(self.W) if self.rank == 0 else value

    def factors_changed(self) -> None:
        """W and H were overwritten (resume from a checkpoint): refresh any state."""

    def state_dict(self) -> dict:
        return {"W": self.W.clone(), "H": self.H.clone(), "iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.W.copy_(state["W"])
        self.H.copy_(state["H"])
        self.iteration = int(state["iteration"])
        self.factors_changed()

    def finish(self) -> SolverOutput:
        return SolverOutput({"W": self.W, "H": self.H})


@register_solver("hals", family="distributed", default_for=("frobenius",))
class DistributedHALS(DistributedSolver):
    r"""Frobenius loss :math:`\tfrac12\|X - WH\|_F^2`, one HALS sweep per factor.

    Statistics: X_p H_p^T (m x r) and H_p H_p^T (r x r). With entry weights (missing
    entries), :math:`\tfrac12 \sum w (X - WH)^2`: the per-row statistics
    :math:`G_i = \sum_j w_{ij} h_j h_j^T` (m x r x r) and :math:`b_i = \sum_j w_{ij} X_{ij} h_j`
    (m x r), then the W update on them and a weighted HALS sweep of H_p: the iterates of
    ``NMF(solver="hals", scale_init=False).fit(X, weights=...)``.
    """

    losses = frozenset({"frobenius"})
    supports_weights = True

    def iterate(self) -> None:
        d, W, H, pen = self.data, self.W, self.H, self.problem.penalties
        if self.problem.weights is not None:
            weights = self.problem.weights.X
            G, b = self.reduce(list(kernels.weighted_row_statistics(d.X, weights, H)), "W-update statistics")
            kernels.row_gram_nnls_sweep_(W, G, b, l1=pen.l1_W, l2=pen.l2_W)
            residual = kernels.weighted_residual(d.X, W, H, weights)
            kernels.weighted_hals_update_(H, W.mT, residual, weights, l1=pen.l1_H, l2=pen.l2_H)
            return
        XHt, HHt = self.reduce([kernels.x_ht(d.X, H), kernels.gram(H, transpose=True)], "W-update statistics")
        Wt = W.mT.contiguous()
        kernels.hals_nnls_(Wt, XHt.mT, HHt, max_sweeps=1, delta=0.0, l1=pen.l1_W, l2=pen.l2_W, keep_rows_positive=True)
        W.copy_(Wt.mT)
        # keep_rows_positive looks at a whole row of H, which a rank does not see: off here.
        kernels.hals_nnls_(H, kernels.wt_x(W, d.X, d.X_t), kernels.gram(W), max_sweeps=1, delta=0.0, l1=pen.l1_H,
                           l2=pen.l2_H)

    def local_objective(self) -> Tensor:
        d = self.data
        if self.problem.weights is not None:
            return kernels.weighted_loss(d.X, self.W, self.H, self.problem.weights.X, 2.0) + self._penalties()
        return kernels.frobenius_loss(d.X, self.W, self.H, d.support) + self._penalties()


@register_solver("mu", family="distributed", default_for=("kl",))
class DistributedKLMU(DistributedSolver):
    r"""KL divergence :math:`\sum X \log(X / WH) - X + WH`, multiplicative updates.

    Statistics: numerator :math:`H_p (X_p / W H_p)^T` and denominator :math:`H_p 1` of
    the update of W^T (both r x m).
    """

    losses = frozenset({"kl"})

    def iterate(self) -> None:
        d, W, H, pen = self.data, self.W, self.H, self.problem.penalties
        dt = d.T
        num, den = kernels.beta_mu_ratio_terms(dt.X, H.mT, W.mT, 1.0, dt.support, dt.X_t, dt.perm_t)
        num, den = self.reduce([num, den], "W-update statistics")
        kernels.mu_update_(W.mT, num, den, kernels.mu_exponent(1.0), pen.l1_W, pen.l2_W)
        num, den = kernels.beta_mu_ratio_terms(d.X, W, H, 1.0, d.support, d.X_t, d.perm_t)
        kernels.mu_update_(H, num, den, kernels.mu_exponent(1.0), pen.l1_H, pen.l2_H)

    def local_objective(self) -> Tensor:
        d = self.data
        return kernels.kl_divergence(d.X, self.W, self.H, d.support) + self._penalties()


@register_solver("scd", family="distributed", default_for=("l1", "wl1"))
class DistributedL1CD(DistributedSolver):
    r"""(Weighted) L1 loss by exact coordinate descent, the iterates of ``solver="scd"``.

    .. math:: \sum_{(i,j)\in\Omega} |X_{ij} - (WH)_{ij}| + \lambda \sum_{(i,j)\notin\Omega} (WH)_{ij}
              + \lambda^{(1)}_W \|W\|_1 + \lambda^{(1)}_H \|H\|_1

    with :math:`\Omega` the nonzeros of X. One iteration: the H sweep on the local columns
    (local), then the W sweep, whose weighted medians are selected across the ranks. Each
    rank keeps the residual on the support of its own columns only; nothing of size nnz is
    communicated.
    """

    losses = frozenset({"l1", "wl1"})

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        X = self.X
        pen = problem.penalties
        if pen.l2_W or pen.l2_H:
            raise ValueError(f"solver 'scd' handles L1 penalties only, got l2_reg_W={pen.l2_W!r}, l2_reg_H={pen.l2_H!r}")
        negative = (kernels.sparse_values(X) if kernels.is_sparse(X) else X) < 0
        if bool(negative.any()):
            raise ValueError(f"X must be nonnegative for the L1 loss; rank {self.rank} holds {int(negative.sum())} negative entries")
        self.lam = problem.loss.zero_weight
        # validated (finite) and without stored zeros, which would count as support
        self.Wt = self.W.mT.contiguous()
        self.l1_state = SparseL1State(prepare_data(X, device=X.device, dtype=X.dtype), self.Wt, self.H)
        offsets = self.l1_state.offsets
        longest = (offsets[1:] - offsets[:-1]).max() + 1 if offsets.numel() > 1 else offsets.new_ones(())
        (longest,) = self.reduce([longest.reshape(1).to(self.W.dtype)], "longest row length", op=dist.ReduceOp.MAX)
        self.rounds = kernels.selection_rounds(int(longest[0]))

    def factors_changed(self) -> None:
        self.Wt.copy_(self.W.mT)
        self.l1_state.reset_residual(self.Wt, self.H)

    def _median(self, b, w, offsets, *, extra_weight, default, layout):
        share = kernels.sort_segments(b, w, layout, extra_weight=extra_weight)
        return kernels.weighted_median_select(
            share,
            all_reduce=lambda t: self.reduce([t], "weighted-median counts")[0],
            all_gather=lambda t: self.gather(t, "weighted-median pivots"),
            rounds=self.rounds,
            default=default,
        )

    def iterate(self) -> None:
        pen = self.problem.penalties
        self.l1_state.sweep_H_(self.Wt, self.H, zero_weight=self.lam, l1=pen.l1_H)
        # the W penalty is one more weight on the breakpoint at 0: added once, by rank 0
        self.l1_state.sweep_W_(self.Wt, self.H, zero_weight=self.lam, l1=pen.l1_W if self.rank == 0 else 0.0,
                               median=self._median)
        self.W.copy_(self.Wt.mT)

    def local_objective(self) -> Tensor:
        data = self.l1_state.data
        return kernels.weighted_l1_loss(data.X, self.W, self.H, self.lam, data.support) + self._penalties()
