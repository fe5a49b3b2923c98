r"""Hierarchical clustering by rank-two NMF splits (H2NMF) and its rank-two pieces.

Each split of a cluster :math:`X_C` (m x |C|) computes a rank-two SVD, runs SPA on
the 2-D projection to pick two columns, fits the closed-form two-column NNLS,
and thresholds :math:`x_j = H_{1j} / (H_{1j} + H_{2j})` by the rule that balances the
cluster sizes while avoiding points near the threshold. The leaf that is split next
is the one whose split most reduces the rank-one approximation error,
:math:`\sigma_1(X_{C_1})^2 + \sigma_1(X_{C_2})^2 - \sigma_1(X_C)^2`.

References
----------
N. Gillis, D. Kuang and H. Park, "Hierarchical clustering of hyperspectral images
using rank-two nonnegative matrix factorization", IEEE TGRS 53(4), 2015.
D. Kuang and H. Park, "Fast rank-2 nonnegative matrix factorization for
hierarchical document clustering", KDD 2013.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .separable import spa

__all__ = ["H2NMFClusters", "h2nmf_clustering", "rank2_svd", "rank2_nnls", "split_threshold"]


class H2NMFClusters(NamedTuple):
    """Result of :func:`h2nmf_clustering`.

    labels : Tensor of int64, shape (n,)
        Cluster of each column, in 0..k-1.
    representatives : Tensor of int64, shape (k,)
        One column index of X per cluster (the column closest in angle, after
        centring, to the cluster's first singular vector).
    sizes : Tensor of int64, shape (k,)
        Number of columns in each cluster.
    """

    labels: Tensor
    representatives: Tensor
    sizes: Tensor


def _top_eig_gram(X: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Leading k singular triplets of a small-side Gram eigendecomposition (exact)."""
    m, n = X.shape
    tiny = torch.finfo(X.dtype).tiny
    if m <= n:
        vals, vecs = torch.linalg.eigh(X @ X.transpose(0, 1))
        vals, U = vals.flip(0)[:k].clamp_min(0), vecs.flip(1)[:, :k]
        S = vals.sqrt()
        Vh = (U.transpose(0, 1) @ X) / S.clamp_min(tiny).unsqueeze(1)
    else:
        vals, vecs = torch.linalg.eigh(X.transpose(0, 1) @ X)
        vals, V = vals.flip(0)[:k].clamp_min(0), vecs.flip(1)[:, :k]
        S = vals.sqrt()
        U = (X @ V) / S.clamp_min(tiny)
        Vh = V.transpose(0, 1)
    return U, S, Vh


def rank2_svd(X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Best rank-two approximation U diag(S) Vh of X (m x n), from the smaller Gram matrix.

    Returns U (m x 2), S (2,), Vh (2 x n); for a single column the second triplet is zero.
    """
    k = min(2, *X.shape)
    U, S, Vh = _top_eig_gram(X, k)
    if k < 2:
        U = torch.cat([U, U.new_zeros(U.shape[0], 2 - k)], dim=1)
        S = torch.cat([S, S.new_zeros(2 - k)])
        Vh = torch.cat([Vh, Vh.new_zeros(2 - k, Vh.shape[1])])
    return U, S, Vh


def rank2_nnls(W: Tensor, X: Tensor) -> Tensor:
    r"""Closed-form :math:`\arg\min_{H \ge 0} \|X - WH\|_F` for two columns W (m x 2), batched.

    Each column takes the unconstrained solution when it is nonnegative; otherwise the
    better of the two one-column solutions :math:`(\max(0, b_1)/a_{11}, 0)` and
    :math:`(0, \max(0, b_2)/a_{22})` (the one with the larger :math:`b_k^2 / a_{kk}`),
    with :math:`A = W^T W`, :math:`b = W^T x` (Kuang and Park, 2013).

    Returns
    -------
    Tensor, shape (2, n)
    """
    A = W.transpose(0, 1) @ W
    b = W.transpose(0, 1) @ X
    tiny = torch.finfo(X.dtype).tiny
    a11, a12, a22 = A[0, 0].clamp_min(tiny), A[0, 1], A[1, 1].clamp_min(tiny)
    det = a11 * a22 - a12 * a12
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    h1 = (a22 * b[0] - a12 * b[1]) / safe_det
    h2 = (a11 * b[1] - a12 * b[0]) / safe_det
    free = (det > 1e-12 * a11 * a22) & (h1 >= 0) & (h2 >= 0)
    b1, b2 = b[0].clamp_min(0), b[1].clamp_min(0)
    first = b1 * b1 / a11 >= b2 * b2 / a22
    single1 = torch.where(first, b1 / a11, torch.zeros_like(b1))
    single2 = torch.where(first, torch.zeros_like(b2), b2 / a22)
    return torch.stack([torch.where(free, h1, single1), torch.where(free, h2, single2)])


def split_threshold(x: Tensor, *, step: float = 0.01, window: float = 0.05) -> Tensor:
    r"""Threshold on x in [0, 1] balancing the two sides and avoiding dense regions.

    Minimises over a grid :math:`\delta \in \{0, s, 2s, \dots, 1\}`

    .. math:: f(\delta) = -\log\big(F(\delta)(1 - F(\delta))\big) + \exp(\rho(\delta))

    with :math:`F(\delta)` the fraction of entries :math:`\le \delta` and
    :math:`\rho(\delta)` the fraction of entries within ``window`` of delta divided by
    the window's width (Gillis, Kuang and Park, 2015, Section III-B).

    Returns
    -------
    Tensor (0-dim)
        The threshold; the first side is ``x >= threshold``.
    """
    n = x.numel()
    xs, _ = torch.sort(x)
    grid = torch.arange(0, round(1 / step) + 1, device=x.device, dtype=x.dtype) * step
    F = torch.searchsorted(xs, grid, right=True).to(x.dtype) / n
    high = (grid + window).clamp(max=1)
    low = (grid - window).clamp(min=0)
    inside = torch.searchsorted(xs, high, right=True) - torch.searchsorted(xs, low, right=False)
    rho = inside.to(x.dtype) / n / (high - low)
    f = -torch.log(F * (1 - F)) + torch.exp(rho)
    f = torch.where(torch.isfinite(f), f, torch.full_like(f, torch.inf))
    return grid[torch.argmin(f)]


def _sigma1_sq(X: Tensor) -> Tensor:
    m, n = X.shape
    G = X @ X.transpose(0, 1) if m <= n else X.transpose(0, 1) @ X
    return torch.linalg.eigvalsh(G)[-1].clamp_min(0)


def _representative(X: Tensor) -> Tensor:
    """Column of X minimising the spectral angle with |u1| after centring (0-dim int64)."""
    U, _, _ = _top_eig_gram(X, 1)
    u = U[:, 0].abs()
    u = u - u.mean()
    Xc = X - X.mean(dim=0, keepdim=True)
    cos = (u @ Xc) / (torch.linalg.vector_norm(Xc, dim=0) * torch.linalg.vector_norm(u)).clamp_min(
        torch.finfo(X.dtype).tiny
    )
    return torch.argmax(cos)


def _split(X: Tensor, cols: Tensor):
    """Split the columns ``cols`` of X in two; None when the cluster cannot be split."""
    if cols.numel() < 2:
        return None
    Xc = X.index_select(1, cols)
    _, S, Vh = rank2_svd(Xc)
    Y = S.unsqueeze(1) * Vh  # 2-D projection, 2 x |C|
    if not bool(S[1] > 0):
        return None
    K = spa(Y, 2)
    H = rank2_nnls(Y.index_select(1, K), Y)
    x = H[0] / (H.sum(dim=0) + 1e-16)
    threshold = split_threshold(x)
    first = x >= threshold
    left, right = cols[first], cols[~first]
    if left.numel() == 0 or right.numel() == 0:
        return None
    sl = _sigma1_sq(X.index_select(1, left))
    sr = _sigma1_sq(X.index_select(1, right))
    return left, right, float(sl + sr - S[0] * S[0])


def h2nmf_clustering(X: Tensor, n_clusters: int) -> H2NMFClusters:
    r"""Hierarchical rank-two NMF clustering of the columns of X (m x n) into k clusters.

    Starting from one cluster, repeatedly split the leaf whose split reduces
    :math:`\sum_{\text{leaves}} \|X_C\|_F^2 - \sigma_1(X_C)^2` the most, until there are
    ``n_clusters`` leaves (or no leaf can be split: duplicate columns). Deterministic.

    Parameters
    ----------
    X : Tensor, shape (m, n)
        Nonnegative dense data; the columns are the points (pixels).
    n_clusters : int
        Number k of clusters, 1 <= k <= n.

    Returns
    -------
    H2NMFClusters
        ``labels`` (n,), ``representatives`` (k,) column indices of X, ``sizes`` (k,).
        Clusters are numbered in the order in which the leaves were created.

    Raises
    ------
    ValueError
        If ``n_clusters`` is not in [1, n].

    References
    ----------
    N. Gillis, D. Kuang and H. Park, "Hierarchical clustering of hyperspectral images
    using rank-two nonnegative matrix factorization", IEEE TGRS 53(4), 2015.
    """
    if X.dim() != 2:
        raise ValueError(f"X must be 2-D (m x n), got shape {tuple(X.shape)}")
    n = X.shape[1]
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be an integer in [1, n={n}], got {n_clusters!r}")
    root = torch.arange(n, device=X.device)
    leaves = [(root, _split(X, root))]
    while len(leaves) < n_clusters:
        gains = [s[2] if s is not None else -math.inf for _, s in leaves]
        best = max(range(len(leaves)), key=gains.__getitem__)
        if leaves[best][1] is None:
            break  # nothing left to split (e.g. duplicated columns)
        left, right, _ = leaves.pop(best)[1]
        leaves += [(left, _split(X, left)), (right, _split(X, right))]
    labels = torch.empty(n, dtype=torch.int64, device=X.device)
    reps, sizes = [], []
    for k, (cols, _) in enumerate(leaves):
        labels[cols] = k
        reps.append(cols[_representative(X.index_select(1, cols))])
        sizes.append(cols.numel())
    return H2NMFClusters(labels, torch.stack(reps), torch.tensor(sizes, dtype=torch.int64, device=X.device))
