r"""Nonnegative least squares by HALS (block coordinate descent over rows).

Solves, for fixed W (m x r),

.. math:: \min_{H \ge 0} \tfrac12 \|X - WH\|_F^2 + \lambda_1 \|H\|_1 + \tfrac{\lambda_2}{2}\|H\|_F^2

from the sufficient statistics ``A = W^T X`` (r x n) and ``B = W^T W`` (r x r):
each row is updated in closed form,

.. math:: H_{k,:} \leftarrow \max\Big(0, \frac{A_{k,:} - B_{k,:} H + B_{kk} H_{k,:} - \lambda_1}{B_{kk} + \lambda_2}\Big).

This is the one NNLS routine of the package: HALS for NMF, the H-fit of separable
NMF, the proximal steps of dictionary NMF and the CP factors all call it (a
proximal term :math:`\delta\|H - H_0\|^2` is A += delta H_0, B += delta I).

References
----------
A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative
matrix and tensor factorizations", IEICE Trans. Fundamentals, 2009.
N. Gillis and F. Glineur, "Accelerated multiplicative updates and hierarchical ALS
algorithms for nonnegative matrix factorization", Neural Computation 24(4), 2012.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["hals_sweep_", "hals_nnls_"]


class _SweepPlan:
    """What the row updates reuse across sweeps: row views and the scalars 1 / (B_kk + l2).

    Row k of the update is ``H_k <- max(0, (A_k - l1 - B'_k H) / (B_kk + l2))`` with B' = B
    with a zero diagonal. Every per-row operation is a BLAS call (``addmv``) or works on
    one row, so no large element-wise parallel region runs inside a sweep: those stall
    when the machine is shared. Reading the r diagonal entries to the host costs one
    sync per call (as does each stopping test).
    """

    def __init__(self, H: Tensor, A: Tensor, B: Tensor, l1: float, l2: float, track_change: bool):
        tiny = torch.finfo(B.dtype).tiny
        self.inverse = [1.0 / max(d + l2, tiny) for d in torch.diagonal(B).tolist()]
        self.l1 = [l1 * inv for inv in self.inverse] if l1 else None
        B_off = B.clone()
        B_off.diagonal().zero_()
        self.A_rows, self.B_rows, self.H_rows = A.unbind(0), B_off.unbind(0), H.unbind(0)
        self.Ht = H.transpose(0, 1)
        self.buffer = H.new_empty(H.shape[1])
        self.diff = H.new_empty(H.shape) if track_change else None
        self.ones = H.new_ones(H.shape[1])


def _sweep_(H: Tensor, plan: _SweepPlan, keep_rows_positive: bool) -> Tensor | None:
    buffer, diff = plan.buffer, plan.diff
    for k, (inverse, H_row) in enumerate(zip(plan.inverse, plan.H_rows)):
        torch.addmv(plan.A_rows[k], plan.Ht, plan.B_rows[k], beta=inverse, alpha=-inverse, out=buffer)
        if plan.l1 is not None:
            buffer.sub_(plan.l1[k])
        buffer.clamp_(min=0)
        if diff is not None:
            torch.sub(H_row, buffer, out=diff[k])
        H_row.copy_(buffer)
    change = None
    if diff is not None:
        flat = diff.view(-1)
        change = torch.dot(flat, flat)
    if keep_rows_positive:
        row_sums = torch.mv(H, plan.ones)
        floor = 1e-16 * row_sums.max() / H.shape[1]
        H.addr_((row_sums <= 0).to(H.dtype) * floor, plan.ones)
    return change


def hals_sweep_(
    H: Tensor,
    A: Tensor,
    B: Tensor,
    l1: float = 0.0,
    l2: float = 0.0,
    keep_rows_positive: bool = False,
) -> Tensor:
    """One HALS sweep over the rows of H (r x n), in place.

    Parameters
    ----------
    H : Tensor, shape (r, n)
        Updated in place (it may be a transposed view, e.g. ``W.T``).
    A : Tensor, shape (r, n)
        ``W^T X``.
    B : Tensor, shape (r, r)
        ``W^T W``.
    l1, l2 : float
        L1 and squared-L2 penalty weights.
    keep_rows_positive : bool
        After the sweep, replace a row that became exactly zero by the constant
        ``1e-16 max_k(sum_j H_kj) / n`` so that the alternating scheme can revive it
        (Gillis and Glineur, 2012, use ``1e-16 max(H)``).

    Returns
    -------
    Tensor
        0-dim squared Frobenius norm of the change of H (no host sync).
    """
    return _sweep_(H, _SweepPlan(H, A, B, l1, l2, True), keep_rows_positive)


def hals_nnls_(
    H: Tensor,
    A: Tensor,
    B: Tensor,
    *,
    max_sweeps: int = 500,
    delta: float = 1e-3,
    l1: float = 0.0,
    l2: float = 0.0,
    keep_rows_positive: bool = False,
) -> int:
    """Repeated HALS sweeps on H (warm start), in place, until the change is small.

    Stops after sweep l when ``||H_l - H_{l-1}||_F <= delta ||H_1 - H_0||_F`` or after
    ``max_sweeps`` sweeps. Each stopping test is one host sync; ``delta=0`` runs
    exactly ``max_sweeps`` sweeps with none. H may be a transposed view (``W.T``).

    Returns
    -------
    int
        Number of sweeps performed.
    """
    threshold = delta * delta
    plan = _SweepPlan(H, A, B, l1, l2, track_change=threshold > 0 and max_sweeps > 1)
    first = None
    for sweep in range(1, max_sweeps + 1):
        change = _sweep_(H, plan, keep_rows_positive)
        if change is None:
            continue
        if first is None:
            first = float(change)
            if first == 0.0:
                return sweep
        elif float(change) <= threshold * first:
            return sweep
    return max_sweeps
