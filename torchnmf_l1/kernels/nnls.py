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


def _scaled_statistics(A: Tensor, B: Tensor, l1: float, l2: float) -> tuple[Tensor, Tensor]:
    # Row k of the update is  H_k <- max(0, A'_k - B'_k H)  with
    # A' = (A - l1) / (B_kk + l2) and B' = B / (B_kk + l2) with a zero diagonal.
    diag = (torch.diagonal(B) + l2).clamp_min(torch.finfo(B.dtype).tiny)
    inverse = diag.reciprocal()[:, None]
    A_scaled = (A - l1) * inverse if l1 else A * inverse
    B_scaled = B * inverse
    B_scaled.diagonal().zero_()
    return A_scaled.contiguous(), B_scaled.contiguous()


def _sweep_(H: Tensor, A_rows, B_rows, H_rows, buffer: Tensor, previous: Tensor, keep_rows_positive: bool) -> Tensor:
    # H is contiguous; A_rows, B_rows, H_rows are the row views of A', B', H.
    previous.copy_(H)
    Ht = H.transpose(0, 1)
    for k in range(len(H_rows)):
        torch.addmv(A_rows[k], Ht, B_rows[k], alpha=-1, out=buffer)
        torch.clamp(buffer, min=0, out=H_rows[k])
    change = torch.sum((H - previous) ** 2)
    if keep_rows_positive:
        dead = H.amax(dim=1, keepdim=True) <= 0
        H.masked_fill_(dead, 1e-16 * H.max())
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
        Updated in place.
    A : Tensor, shape (r, n)
        ``W^T X``.
    B : Tensor, shape (r, r)
        ``W^T W``.
    l1, l2 : float
        L1 and squared-L2 penalty weights.
    keep_rows_positive : bool
        After the sweep, replace a row that became exactly zero by ``1e-16 max(H)`` so
        that the alternating scheme can revive it (Gillis and Glineur, 2012).

    Returns
    -------
    Tensor
        0-dim squared Frobenius norm of the change of H (no host sync).
    """
    A_scaled, B_scaled = _scaled_statistics(A, B, l1, l2)
    work = H if H.is_contiguous() else H.contiguous()
    change = _sweep_(
        work, A_scaled.unbind(0), B_scaled.unbind(0), work.unbind(0),
        work.new_empty(work.shape[1]), torch.empty_like(work), keep_rows_positive,
    )
    if work is not H:
        H.copy_(work)
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

    The sweeps run on a contiguous copy of H with the statistics pre-scaled by the
    diagonal of B, so that each row costs one ``addmv`` and one ``clamp`` and no
    allocation.

    Returns
    -------
    int
        Number of sweeps performed.
    """
    A_scaled, B_scaled = _scaled_statistics(A, B, l1, l2)
    work = H if H.is_contiguous() else H.contiguous()
    A_rows, B_rows, H_rows = A_scaled.unbind(0), B_scaled.unbind(0), work.unbind(0)
    buffer, previous = work.new_empty(work.shape[1]), torch.empty_like(work)
    first = None
    threshold = delta * delta
    sweeps = max_sweeps
    for sweep in range(1, max_sweeps + 1):
        change = _sweep_(work, A_rows, B_rows, H_rows, buffer, previous, keep_rows_positive)
        if threshold == 0:
            continue
        if first is None:
            first = float(change)
            if first == 0.0:
                sweeps = sweep
                break
        elif float(change) <= threshold * first:
            sweeps = sweep
            break
    if work is not H:
        H.copy_(work)
    return sweeps
