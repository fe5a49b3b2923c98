"""Small linear-algebra kernels: a seeded randomized SVD that works on sparse X, and the
adjoint of a fixed point (the implicit backward of an iteration)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .products import is_sparse, wt_x, x_ht

__all__ = ["truncated_svd", "fixed_point_adjoint"]


def truncated_svd(
    X: Tensor,
    rank: int,
    *,
    generator: torch.Generator | None = None,
    oversample: int = 10,
    power_iter: int = 4,
    X_t: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Leading ``rank`` singular triplets of dense or sparse X (m x n).

    Exact (LAPACK) for dense X when ``min(m, n) <= 4 * (rank + oversample)``, otherwise
    the randomized range finder of Halko, Martinsson and Tropp (2011) with
    ``power_iter`` normalised power iterations; the Gaussian test matrix is drawn
    from ``generator`` on X's device, so results repeat for a given seed and device.

    Returns
    -------
    U : Tensor, shape (m, rank)
    S : Tensor, shape (rank,)
    Vh : Tensor, shape (rank, n)
    """
    m, n = X.shape
    k = min(rank + oversample, m, n)
    if not is_sparse(X) and min(m, n) <= 4 * k:
        U, S, Vh = torch.linalg.svd(X, full_matrices=False)
        return U[:, :rank], S[:rank], Vh[:rank]
    omega = torch.randn(n, k, generator=generator, device=X.device, dtype=X.dtype)
    Y = x_ht(X, omega.transpose(0, 1))  # X @ omega
    Q, _ = torch.linalg.qr(Y)
    for _ in range(power_iter):
        Z, _ = torch.linalg.qr(wt_x(Q, X, X_t).transpose(0, 1))  # X^T Q
        Q, _ = torch.linalg.qr(x_ht(X, Z.transpose(0, 1)))  # X Z
    B = wt_x(Q, X, X_t)  # Q^T X, k x n
    Ub, S, Vh = torch.linalg.svd(B, full_matrices=False)
    U = Q @ Ub
    return U[:, :rank], S[:rank], Vh[:rank]


def fixed_point_adjoint(outputs: tuple[Tensor, ...], states: tuple[Tensor, ...], grads: tuple[Tensor, ...], *,
                        max_iter: int, tol: float) -> tuple[Tensor, ...]:
    r"""Solve :math:`v = g + J^T v`, J the Jacobian of one step ``outputs = T(states)`` at a fixed point.

    Fixed-point iteration with one vector-Jacobian product of the recorded step per iteration
    (the implicit backward of an iteration that has converged, Bai, Kolter and Koltun, 2019),
    stopping after ``max_iter`` iterations or once the change of v is at most ``tol`` times
    the size of g (read on the host: this runs in a backward pass, not in a solver step).

    Raises
    ------
    RuntimeError
        When the iteration diverges (the step is not a contraction at this point).
    """
    scale = math.sqrt(sum(float(g.square().sum()) for g in grads))
    floor = max(scale, torch.finfo(grads[0].dtype).tiny)
    v = grads
    for _ in range(max_iter):
        products = torch.autograd.grad(outputs, states, v, retain_graph=True)
        new = tuple(g + j for g, j in zip(grads, products))
        change = math.sqrt(sum(float((a - b).square().sum()) for a, b in zip(new, v)))
        v = new
        if not math.isfinite(change):
            raise RuntimeError("the adjoint iteration diverged: the forward is not at an attracting fixed point")
        if change <= tol * floor:
            break
    return v
