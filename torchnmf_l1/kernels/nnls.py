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
        Updated in place.
    A : Tensor, shape (r, n)
        ``W^T X``.
    B : Tensor, shape (r, r)
        ``W^T W``.
    l1, l2 : float
        L1 and squared-L2 penalty weights.
    keep_rows_positive : bool
        Replace a row that becomes exactly zero by ``1e-16 max(H)`` so that the
        alternating scheme can revive it (Gillis and Glineur, 2012).

    Returns
    -------
    Tensor
        0-dim squared Frobenius norm of the change of H (no host sync).
    """
    r = H.shape[0]
    tiny = torch.finfo(H.dtype).tiny
    change = H.new_zeros(())
    diag = torch.diagonal(B) + l2
    for k in range(r):
        numerator = A[k] - B[k] @ H + B[k, k] * H[k]
        if l1:
            numerator = numerator - l1
        new_row = (numerator / diag[k].clamp_min(tiny)).clamp_min_(0)
        change = change + torch.sum((new_row - H[k]) ** 2)
        if keep_rows_positive:
            floor = 1e-16 * H.max()
            new_row = torch.where(new_row.max() > 0, new_row, floor.expand_as(new_row))
        H[k] = new_row
    return change


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
    exactly ``max_sweeps`` sweeps with none.

    Returns
    -------
    int
        Number of sweeps performed.
    """
    first = None
    threshold = delta * delta
    for sweep in range(1, max_sweeps + 1):
        change = hals_sweep_(H, A, B, l1, l2, keep_rows_positive)
        if threshold == 0:
            continue
        if first is None:
            first = float(change)
            if first == 0.0:
                return sweep
        elif float(change) <= threshold * first:
            return sweep
    return max_sweeps
