r"""L1-NMF and weighted L1-NMF by exact coordinate descent (weighted medians), one problem or a batch.

.. math::
    f(W, H) = \sum_{(i,j)\in\Omega} |X_{ij} - (WH)_{ij}|
              + \lambda \sum_{(i,j)\notin\Omega} (WH)_{ij}
              + \lambda^{(1)}_W \|W\|_1 + \lambda^{(1)}_H \|H\|_1,
    \qquad W \ge 0,\ H \ge 0,

with :math:`\Omega` the nonzeros of X and :math:`\lambda` the loss's ``zero_weight``
(1: plain L1-NMF, ``loss="l1"``; :math:`0 \le \lambda < 1`: weighted L1-NMF, ``loss="wl1"``).
The sweeps are the kernels :func:`torchnmf_l1.kernels.sparse_l1_sweep_` and
:func:`~torchnmf_l1.kernels.dense_l1_sweep_`: each scalar step is an exact weighted median,
a whole row of H (or column of W) per call, so the objective never increases.

Two registered solvers:

* ``"scd"`` (sparse coordinate descent; default for ``l1`` and ``wl1``): the terms are
  the nonzeros of X only. Work per iteration O(r nnz(X) log(nnz per column/row)), memory
  O(nnz + (m + n) r); no dense m x n tensor is ever formed. A dense X is converted once
  to its support (its nonzeros), so ``solver="scd"`` accepts dense X as well. A batch is
  the block-diagonal X of its problems: one set of weighted medians for all of them.
* ``"cd-l1"`` (dense coordinate descent, dense X only): every entry of X is a term,
  zero entries weighted by :math:`\lambda`. Work O(r mn log m) per iteration with dense
  m x n temporaries: the reference that sCD is measured against.

References
----------
Q. Ke and T. Kanade, "Robust L1 norm factorization in the presence of outliers and
missing data by alternative convex programming", CVPR 2005.
N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import torch
from torch import Tensor

from .. import kernels
from ..data import Data, block_diagonal
from ..kernels.weighted_median import segment_layout
from ..params import Choice, Param
from ..registry import register_solver
from .base import NMFSolver

__all__ = ["SparseL1CD", "DenseL1CD", "SparseL1State"]


#: relative to sqrt(max X) per problem, the scale of a factor entry: 1e-14 and 1e-12 are
#: the absolute thresholds of the authors' code, whose data have max X = 1
WEIGHT_FLOOR, VALUE_FLOOR = 1e-14, 1e-12

L1_OPTIONS = {
    "order": Param("WH", Choice("WH", "HW"), "update order per iteration: W then H (the authors' code) or H then W"),
    "safeguard": Param(
        "paper", Choice("paper", "exact"),
        "'paper': weights <= 1e-14 s dropped, medians raised to >= 1e-12 s (s = sqrt(max X)), no weight -> 0, as "
        "the authors' code; 'exact': the exact minimiser, a coordinate with no weight keeps its value",
    ),
    "stopping": Param(
        "relative", Choice("relative", "paper"),
        "'relative': the fit loop's rule on the relative decrease; 'paper': stop when objective / sum(X) decreases "
        "by less than tol between two checks (an increase stops too), as the authors' code",
    ),
}


class _L1Base(NMFSolver):
    losses = frozenset({"l1", "wl1"})
    options: ClassVar[dict] = L1_OPTIONS
    default_init: ClassVar[str] = "l1-init"

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        self.order = self.config["order"].upper()  # Choice stores strings lower-case
        self.weight_floor = self.value_floor = None
        if self.config["safeguard"] == "paper":
            scale = _problem_max(problem.data).sqrt()
            self.weight_floor, self.value_floor = WEIGHT_FLOOR * scale, VALUE_FLOOR * scale
        self._total = None
        self._previous_ratio = None
        self._initial_ratio = None

    def _start_stopping(self) -> None:
        """The objective / sum(X) of the start, for the first check of ``stopping="paper"``
        (called once the subclass can evaluate its objective; no host read)."""
        if self.config["stopping"] == "paper":
            self._total = self.problem.data.sum().clamp_min(torch.finfo(self.problem.data.dtype).tiny)
            self._initial_ratio = self.objective() / self._total

    def step(self) -> None:
        if self.order == "WH":
            self._update_W()
            self._update_H()
        else:
            self._update_H()
            self._update_W()

    def at_check(self, tol: float):
        """With ``stopping="paper"``: done when objective / sum(X) fell by less than ``tol``
        since the last check (the authors' rule, checked every iteration by default)."""
        if self.config["stopping"] != "paper":
            return None
        ratio = (self.objective() / self._total).reshape(-1).tolist()
        previous, self._previous_ratio = self._previous_ratio, ratio
        if previous is None:
            previous = self._initial_ratio.reshape(-1).tolist()
        return [p - c < tol for p, c in zip(previous, ratio)]

    @classmethod
    def check_problem(cls, problem) -> None:
        super().check_problem(problem)
        pen = problem.penalties
        if pen.l2_W or pen.l2_H:
            raise ValueError(
                f"solver {cls.name!r} handles L1 penalties only, got l2_reg_W={pen.l2_W!r}, l2_reg_H={pen.l2_H!r}"
            )

    def result_extra(self) -> dict:
        """The relative error and ``objective / sum(X)``, the scale-free objective of L1-NMF."""
        total = self.problem.data.sum()
        ratio = self.objective() / total.clamp_min(torch.finfo(total.dtype).tiny)
        return {**super().result_extra(), "objective_over_sum_x": ratio.tolist()}


class SparseL1State:
    """The state of sparse coordinate descent: the support of X in both CSR orders and the residual on it.

    The residual X - WH is kept on the support only, in X's CSR order; the H sweep
    works in X^T's CSR order (segments = columns of X), moving the residual with
    ``Data.perm_t``; the W sweep in X's order (segments = rows of X). The factors are
    given stacked: ``Wt`` (r x L) = W^T and ``Hs`` (r x S) = H, with L = B m and S = B n for a
    block-diagonal batch of B problems. Shared by ``solver="scd"`` and the data-parallel
    L1 solver of :mod:`torchnmf_l1.solvers.distributed` (which holds one per rank).

    Parameters
    ----------
    data : Data
        X (sparse; a dense X is converted once to its support, its nonzeros).
    Wt : Tensor, shape (r, L)
    Hs : Tensor, shape (r, S)
        The factors the residual starts from.
    weights : Data, optional
        Entry weights on the support of ``data`` (which then holds the observed entries,
        zeros included): :func:`torchnmf_l1.missing.prepare_weighted`'s support layout.
    """

    def __init__(self, data: Data, Wt: Tensor, Hs: Tensor, weights: Data | None = None):
        if not data.sparse:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
                X = data.X
                if X.dim() == 3:  # a dense batch: its block-diagonal support
                    data = Data.from_tensor(block_diagonal([x.to_sparse_csr() for x in X]), batch=X.shape[0])
                else:
                    data = Data.from_tensor(X.to_sparse_csr())
        self.data = data
        self.batch = data.batch
        self.data_t = data.T
        self.offsets = data.X.crow_indices().to(torch.int64)  # segments = rows of X (W sweep)
        self.offsets_t = self.data_t.X.crow_indices().to(torch.int64)  # segments = columns of X (H sweep)
        self.layout = segment_layout(self.offsets, extra=True)
        self.layout_t = segment_layout(self.offsets_t, extra=True)
        self.weights = None if weights is None else weights.values
        self.weights_t = None if weights is None else weights.values[data.perm_t]
        self.reset_residual(Wt, Hs)

    def reset_residual(self, Wt: Tensor, Hs: Tensor) -> None:
        """Recompute the residual on the support from the stacked factors, e.g. after a resume."""
        self.R = self.data.values - kernels.wh_on_support(Wt.mT, Hs, self.data.rows, self.data.cols, self.data.support.crow)

    def sweep_H_(self, Wt: Tensor, Hs: Tensor, *, zero_weight: float, l1: float = 0.0, median=None, active=None,
                 **floors) -> None:
        """One sweep over the rows of H (stacked, r x S), in place; ``floors``: the
        ``weight_floor`` and ``value_floor`` of :func:`~torchnmf_l1.kernels.sparse_l1_sweep_`."""
        d, dt = self.data, self.data_t
        Rt = kernels.sparse_l1_sweep_(
            Hs, Wt.mT, self.R[d.perm_t], dt.rows, dt.cols, self.offsets_t, zero_weight=zero_weight, l1=l1,
            layout=self.layout_t, median=median, batch=self.batch, active=active, entry_weights=self.weights_t,
            **floors,
        )
        self.R = Rt[dt.perm_t]

    def sweep_W_(self, Wt: Tensor, Hs: Tensor, *, zero_weight: float, l1: float = 0.0, median=None, active=None,
                 **floors) -> None:
        """One sweep over the columns of W (the rows of the stacked W^T, r x L), in place;
        ``median`` and ``floors`` as in :func:`~torchnmf_l1.kernels.sparse_l1_sweep_`."""
        d = self.data
        self.R = kernels.sparse_l1_sweep_(
            Wt, Hs.mT, self.R, d.rows, d.cols, self.offsets, zero_weight=zero_weight, l1=l1, layout=self.layout,
            median=median, batch=self.batch, active=active, entry_weights=self.weights, **floors,
        )


def _problem_max(data: Data) -> Tensor:
    """max X per problem: 0-dim, or (B,) for a batch (replicates of one X: 0-dim)."""
    if data.sparse:
        offsets = getattr(data, "offsets", None)
        if data.batch is not None and offsets is not None:
            return torch.segment_reduce(data.values, "max", offsets=offsets, initial=0.0)
        return data.values.amax() if data.values.numel() else data.values.new_zeros(())
    X = data.X
    return X.amax(dim=(-2, -1)) if X.dim() == 3 else X.amax()


def _stacked_views(state, batch: int | None) -> tuple[Tensor, Tensor]:
    """Contiguous stacked W^T (r x B m) and H (r x B n); the state is given views of them."""
    W, H = state.W, state.H
    if batch is None:
        Wt, Hs = W.mT.contiguous(), H.contiguous()
        state.W, state.H = Wt.mT, Hs
        return Wt, Hs
    B, m, r = W.shape
    n = H.shape[-1]
    Wt = W.permute(2, 0, 1).reshape(r, B * m).contiguous()
    Hs = H.permute(1, 0, 2).reshape(r, B * n).contiguous()
    state.W = Wt.view(r, B, m).permute(1, 2, 0)
    state.H = Hs.view(r, B, n).permute(1, 0, 2)
    return Wt, Hs


@register_solver("scd", family="nmf", default_for=("l1", "wl1"))
class SparseL1CD(_L1Base):
    """Sparse coordinate descent (sCD) for (weighted) L1-NMF; see the module docstring
    and :class:`SparseL1State`."""

    supports_sparse = True
    supports_weights = True  # on the observed entries: the missing ones weigh nothing
    takes_replicates = False  # a residual per problem: replicates are fitted as copies of X

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        if problem.shared:
            raise ValueError("solver 'scd' fits one X per problem: give a batch of matrices, not replicates of one X")
        if problem.weights is not None and not problem.weights.sparse:
            raise ValueError("solver 'scd' takes entry weights on the observed entries (the support layout of "
                             "torchnmf_l1.missing.prepare_weighted(..., layout='support'))")
        self.lam = 0.0 if problem.weights is not None else float(problem.loss.zero_weight)
        self.Wt, self.Hs = _stacked_views(state, problem.batch)
        self.l1_state = SparseL1State(problem.data, self.Wt, self.Hs, problem.weights)
        self._start_stopping()

    def _floors(self) -> dict:
        return {"weight_floor": self.weight_floor, "value_floor": self.value_floor}

    def _update_H(self) -> None:
        if self.update_H:
            self.l1_state.sweep_H_(self.Wt, self.Hs, zero_weight=self.lam, l1=self.problem.penalties.l1_H,
                                   active=self.active, **self._floors())

    def _update_W(self) -> None:
        if self.update_W:
            self.l1_state.sweep_W_(self.Wt, self.Hs, zero_weight=self.lam, l1=self.problem.penalties.l1_W,
                                   active=self.active, **self._floors())


@register_solver("cd-l1", family="nmf")
class DenseL1CD(_L1Base):
    """Dense coordinate descent for (weighted) L1-NMF: every entry of dense X is a term."""

    supports_sparse = False

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        X = problem.data.X
        self.lam = float(problem.loss.zero_weight)
        self.Wt = state.W.mT.contiguous()
        state.W = self.Wt.mT
        self.R = X - self.W @ self.H  # (B, m, n) also for replicates of a shared X
        self.zeros = (X == 0).expand_as(self.R)
        self._start_stopping()

    def _update_H(self) -> None:
        if self.update_H:
            kernels.dense_l1_sweep_(self.H, self.W, self.R, self.zeros, zero_weight=self.lam,
                                    l1=self.problem.penalties.l1_H, active=self.active,
                                    weight_floor=self.weight_floor, value_floor=self.value_floor)

    def _update_W(self) -> None:
        if self.update_W:
            kernels.dense_l1_sweep_(self.Wt, self.H.mT, self.R.mT, self.zeros.mT, zero_weight=self.lam,
                                    l1=self.problem.penalties.l1_W, active=self.active,
                                    weight_floor=self.weight_floor, value_floor=self.value_floor)
