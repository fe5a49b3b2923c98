r"""L1-NMF and weighted L1-NMF by exact coordinate descent (weighted medians).

.. math::
    f(W, H) = \sum_{(i,j)\in\Omega} |X_{ij} - (WH)_{ij}|
              + \lambda \sum_{(i,j)\notin\Omega} (WH)_{ij}
              + \lambda^{(1)}_W \|W\|_1 + \lambda^{(1)}_H \|H\|_1,
    \qquad W \ge 0,\ H \ge 0,

with :math:`\Omega` the nonzeros of X and :math:`\lambda` the loss's ``zero_weight``
(1: plain L1-NMF, ``loss="l1"``; :math:`0 \le \lambda < 1`: weighted L1-NMF, ``loss="wl1"``).

Each scalar subproblem in :math:`H_{pq}` is
:math:`\min_{h\ge 0} \sum_{i \in \Omega_q} W_{ip} |b_i - h| + e_q h`, with breakpoints
:math:`b_i = (R_{iq} + W_{ip} H_{pq}) / W_{ip}` (R = X - WH on the support) and
:math:`e_q = \lambda(\sum_i W_{ip} - \sum_{i\in\Omega_q} W_{ip}) + \lambda^{(1)}_H`
(all zeros of column q collapse into one breakpoint at 0, since
:math:`\lambda (WH)_{iq} = \lambda|0 - (WH)_{iq}|` is linear in :math:`h \ge 0`). Its exact
solution is the lower weighted median, clamped at 0
(:func:`torchnmf_l1.kernels.weighted_median`). Given W the columns of H are independent,
so row p of H is updated for all n columns in one batched call, p = 1..r in turn, and
the residual on the support is updated after each row; W is updated the same way on
the transpose. Every update is exact, so the objective never increases.

Two registered solvers share that sweep:

* ``"scd"`` (sparse coordinate descent; default for ``l1`` and ``wl1``): the terms are
  the nonzeros of X only. Work per iteration O(r nnz(X) log(nnz per column/row)), memory
  O(nnz + (m + n) r); no dense m x n tensor is ever formed. A dense X is converted once
  to its support (its nonzeros), so ``solver="scd"`` accepts dense X as well.
* ``"cd-l1"`` (dense coordinate descent, dense X only): every entry of X is a term,
  zero entries weighted by :math:`\lambda` (with their exact breakpoint
  :math:`-\sum_{p'\ne p} W_{ip'}H_{p'q}/W_{ip} \le 0`, which gives the same clamped
  median as the collapsed breakpoint at 0). Work O(r mn log m) per iteration with
  dense m x n temporaries: the reference that sCD is measured against.

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
from ..data import Data
from ..kernels.weighted_median import segment_layout
from ..registry import register_solver
from .base import Solver

__all__ = ["SparseL1CD", "DenseL1CD", "SparseL1State", "sparse_l1_sweep_", "dense_l1_sweep_"]


def sparse_l1_sweep_(
    G: Tensor,
    F: Tensor,
    R: Tensor,
    segments: Tensor,
    other: Tensor,
    offsets: Tensor,
    *,
    zero_weight: float = 1.0,
    l1: float = 0.0,
    layout=None,
    median=None,
) -> Tensor:
    r"""One exact coordinate-descent sweep over the rows of G (r x S), in place.

    Minimises :math:`\sum_k |R_k|` over the support (entries k in segment ``segments[k]``
    and row ``other[k]`` of F) plus ``zero_weight`` times the off-support part of
    :math:`F G`, plus ``l1 * sum(G)``, row by row of G.

    Parameters
    ----------
    G : Tensor, shape (r, S)
        The factor being updated (H, or W^T for the transposed problem).
    F : Tensor, shape (L, r)
        The fixed factor (W, or H^T).
    R : Tensor, shape (N,)
        Residual X - F G on the support, in segment order (CSR of the segments).
    segments, other : int64 Tensor, shape (N,)
        Segment (column of G) and row of F of each support entry.
    offsets : int64 Tensor, shape (S + 1,)
        CSR offsets of the segments.
    layout : SegmentLayout, optional
        ``segment_layout(offsets, extra=True)``, built once.
    median : callable, optional
        ``median(b, w, offsets, extra_weight=, default=, layout=)``, the scalar solver;
        default :func:`torchnmf_l1.kernels.weighted_median`. The data-parallel L1 solver
        passes :func:`torchnmf_l1.kernels.weighted_median_select` over its ranks
        (:class:`torchnmf_l1.distributed.L1CDStatistics`).

    Returns
    -------
    Tensor, shape (N,)
        The updated residual.
    """
    r, S = G.shape
    median = kernels.weighted_median if median is None else median
    column_sums = F.sum(0)
    tiny = torch.finfo(F.dtype).tiny
    for p in range(r):
        w = F[:, p].index_select(0, other)
        g = G[p]
        a = R + w * g.index_select(0, segments)
        # where w = 0 the breakpoint is a finite or infinite value of weight zero: never chosen
        b = a / w.clamp_min(tiny)
        on_support = torch.segment_reduce(w, "sum", offsets=offsets) if w.numel() else w.new_zeros(S)
        extra = (zero_weight * (column_sums[p] - on_support)).clamp_min(0)
        if l1:
            extra = extra + l1
        new = median(b, w, offsets, extra_weight=extra, default=g, layout=layout)
        R = a - w * new.index_select(0, segments)
        G[p] = new
    return R


def dense_l1_sweep_(G: Tensor, F: Tensor, R: Tensor, Z: Tensor | None, *, l1: float = 0.0) -> None:
    r"""One exact coordinate-descent sweep over the rows of G (r x S) for dense data, in place.

    ``R`` (L x S) is the dense residual X - F G, updated in place; ``Z`` (L x S) the
    per-entry weight (1 on nonzeros, :math:`\lambda` on zeros; None for all ones).
    """
    r, S = G.shape
    tiny = torch.finfo(F.dtype).tiny
    extra = G.new_full((S,), l1) if l1 else None
    for p in range(r):
        f = F[:, p : p + 1]
        g = G[p]
        a = R + f * g
        b = torch.where(f > 0, a / f.clamp_min(tiny), 0.0)
        w = f.expand_as(a) if Z is None else f * Z
        new = kernels.weighted_median(b, w, extra_weight=extra, default=g)
        R.copy_(a - f * new)
        G[p] = new


class _L1Base(Solver):
    losses = frozenset({"l1", "wl1"})
    options: ClassVar[dict] = {}
    default_init: ClassVar[str] = "l1-init"

    @classmethod
    def check_problem(cls, problem) -> None:
        super().check_problem(problem)
        pen = problem.penalties
        if pen.l2_W or pen.l2_H:
            raise ValueError(
                f"solver {cls.name!r} handles L1 penalties only, got l2_reg_W={pen.l2_W!r}, l2_reg_H={pen.l2_H!r}"
            )

    def result_extra(self) -> dict:
        """``objective / sum(X)``, the scale-free objective reported for L1-NMF."""
        total = kernels.data_sum(self.problem.data.X)
        return {"objective_over_sum_x": float(self.objective() / total.clamp_min(torch.finfo(total.dtype).tiny))}


class SparseL1State:
    """The state of sparse coordinate descent: the support of X in both CSR orders and the residual on it.

    The residual X - WH is kept on the support only, in X's CSR order; the H sweep
    works in X^T's CSR order (segments = columns of X), moving the residual with
    ``Data.perm_t``; the W sweep in X's order (segments = rows of X). Shared by
    ``solver="scd"`` and the data-parallel :class:`torchnmf_l1.distributed.L1CDStatistics`
    (which holds one per rank, for its columns).

    Parameters
    ----------
    data : Data
        X (sparse; a dense X is converted once to its support, its nonzeros).
    W : Tensor, shape (m, r)
    H : Tensor, shape (r, n)
        The factors the residual starts from.
    """

    def __init__(self, data: Data, W: Tensor, H: Tensor):
        if not data.sparse:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
                data = Data.from_tensor(data.X.to_sparse_csr())
        self.data = data
        self.data_t = data.T
        self.offsets = data.X.crow_indices().to(torch.int64)  # segments = rows of X (W sweep)
        self.offsets_t = self.data_t.X.crow_indices().to(torch.int64)  # segments = columns of X (H sweep)
        self.layout = segment_layout(self.offsets, extra=True)
        self.layout_t = segment_layout(self.offsets_t, extra=True)
        self.reset_residual(W, H)

    def reset_residual(self, W: Tensor, H: Tensor) -> None:
        """Recompute the residual on the support from (W, H), e.g. after a resume."""
        self.R = self.data.values - kernels.wh_on_support(W, H, self.data.rows, self.data.cols)

    def sweep_H_(self, W: Tensor, H: Tensor, *, zero_weight: float, l1: float = 0.0) -> None:
        """One sweep over the rows of H, in place."""
        d, dt = self.data, self.data_t
        Rt = sparse_l1_sweep_(H, W, self.R[d.perm_t], dt.rows, dt.cols, self.offsets_t,
                              zero_weight=zero_weight, l1=l1, layout=self.layout_t)
        self.R = Rt[dt.perm_t]

    def sweep_W_(self, W: Tensor, H: Tensor, *, zero_weight: float, l1: float = 0.0, median=None) -> None:
        """One sweep over the columns of W (the rows of W^T), in place; ``median`` as in :func:`sparse_l1_sweep_`."""
        d = self.data
        Wt = W.transpose(0, 1).contiguous()
        self.R = sparse_l1_sweep_(Wt, H.transpose(0, 1), self.R, d.rows, d.cols, self.offsets,
                                  zero_weight=zero_weight, l1=l1, layout=self.layout, median=median)
        W.copy_(Wt.transpose(0, 1))


@register_solver("scd", default_for=("l1", "wl1"))
class SparseL1CD(_L1Base):
    """Sparse coordinate descent (sCD) for (weighted) L1-NMF; see the module docstring
    and :class:`SparseL1State`."""

    supports_sparse = True

    def __init__(self, problem, W, H, **kwargs):
        super().__init__(problem, W, H, **kwargs)
        self.lam = float(problem.loss.zero_weight)
        self.state = SparseL1State(problem.data, W, H)

    def step(self) -> None:
        pen = self.problem.penalties
        if self.update_H:
            self.state.sweep_H_(self.W, self.H, zero_weight=self.lam, l1=pen.l1_H)
        if self.update_W:
            self.state.sweep_W_(self.W, self.H, zero_weight=self.lam, l1=pen.l1_W)


@register_solver("cd-l1")
class DenseL1CD(_L1Base):
    """Dense coordinate descent for (weighted) L1-NMF: every entry of dense X is a term."""

    supports_sparse = False

    def __init__(self, problem, W, H, **kwargs):
        super().__init__(problem, W, H, **kwargs)
        X = problem.data.X
        lam = float(problem.loss.zero_weight)
        self.Z = None if lam == 1.0 else torch.where(X != 0, 1.0, lam).to(X.dtype)
        self.R = X - W @ H

    def step(self) -> None:
        pen = self.problem.penalties
        if self.update_H:
            dense_l1_sweep_(self.H, self.W, self.R, self.Z, l1=pen.l1_H)
        if self.update_W:
            Wt = self.W.transpose(0, 1).contiguous()
            Zt = None if self.Z is None else self.Z.transpose(0, 1)
            Rt = self.R.transpose(0, 1)
            dense_l1_sweep_(Wt, self.H.transpose(0, 1), Rt, Zt, l1=pen.l1_W)
            self.W.copy_(Wt.transpose(0, 1))
