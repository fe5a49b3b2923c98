r"""Kernels of separable NMF: the successive projection algorithm (SPA).

Near-separable NMF: :math:`X \approx X(:, K) H` with :math:`|K| = r`, :math:`H \ge 0`.

References
----------
U. Araújo et al., "The successive projections algorithm for variable selection in
spectroscopic multicomponent analysis", Chemometrics and Intelligent Laboratory
Systems 57(2), 2001.
N. Gillis and S. A. Vavasis, "Fast and robust recursive algorithms for separable
nonnegative matrix factorization", IEEE TPAMI 36(4), 2014.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["spa"]


def spa(X: Tensor, rank: int, *, tie_tol: float = 1e-6) -> Tensor:
    r"""Successive projection algorithm: indices of r columns of X (m x n), O(mnr).

    At each step, pick the column of largest residual norm, breaking near ties
    (relative difference <= ``tie_tol``) by the largest norm in the original X,
    then project every column onto the orthogonal complement of the picked one
    (only the residual norms are updated: :math:`\|R_j\|^2 \leftarrow \|R_j\|^2 - (u^T X_j)^2`
    with u orthonormalised against the previous picks).

    Parameters
    ----------
    X : Tensor, shape (m, n)
        Dense data (columns are the points).
    rank : int
        Number of columns to extract (<= min(m, n)).

    Returns
    -------
    Tensor of int64, shape (rank,)
        Column indices in selection order (0-based). Stays on X's device; no host sync.
    """
    m, n = X.shape
    if rank > min(m, n):
        raise ValueError(f"rank must be <= min(m, n) = {min(m, n)}, got {rank}")
    original = (X * X).sum(dim=0)
    residual = original.clone()
    U = X.new_zeros(m, rank)
    picks = []
    for k in range(rank):
        best = residual.max()
        near = (best - residual) <= tie_tol * best.abs()
        j = torch.argmax(torch.where(near, original, torch.full_like(original, -torch.inf)))
        u = X.index_select(1, j.reshape(1)).squeeze(1)
        if k:
            Uk = U[:, :k]
            u = u - Uk @ (Uk.transpose(0, 1) @ u)
            u = u - Uk @ (Uk.transpose(0, 1) @ u)  # re-orthogonalise for stability
        u = u / torch.linalg.vector_norm(u).clamp_min(torch.finfo(X.dtype).tiny)
        U[:, k] = u
        residual = (residual - (u @ X) ** 2).clamp_min(0)
        residual.index_fill_(0, j.reshape(1), 0)
        picks.append(j)
    return torch.stack(picks)
