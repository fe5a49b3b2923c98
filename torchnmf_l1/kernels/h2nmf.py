r"""Hierarchical clustering by rank-two NMF splits (H2NMF) and its rank-two pieces.

Each split of a cluster :math:`X_C` (m x |C|) computes a rank-two SVD, runs SPA on
the 2-D projection to pick two columns of the rank-two approximation, clips them at 0
(as the authors' code), fits the closed-form two-column NNLS of :math:`X_C` on them,
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

from ..checks import dense_tensor
from ..params import Integer, check_value
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


def _orthonormalize2(V: Tensor) -> Tensor:
    """Gram-Schmidt (twice) on the two columns of V (m x 2)."""
    tiny = torch.finfo(V.dtype).tiny
    q1 = V[:, 0] / torch.linalg.vector_norm(V[:, 0]).clamp_min(tiny)
    v2 = V[:, 1] - q1 * (q1 @ V[:, 1])
    v2 = v2 - q1 * (q1 @ v2)
    q2 = v2 / torch.linalg.vector_norm(v2).clamp_min(tiny)
    return torch.stack([q1, q2], dim=1)


def _sym_eig2(B: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (descending) and eigenvectors of a symmetric 2 x 2 matrix, in closed form."""
    a, b, c = B[0, 0], B[0, 1], B[1, 1]
    half_trace, half_gap = (a + c) / 2, torch.sqrt(((a - c) / 2) ** 2 + b * b)
    vals = torch.stack([half_trace + half_gap, half_trace - half_gap])
    theta = 0.5 * torch.atan2(2 * b, a - c)
    cos, sin = torch.cos(theta), torch.sin(theta)
    vecs = torch.stack([torch.stack([cos, sin]), torch.stack([-sin, cos])], dim=1)
    return vals, vecs


def rank2_svd(
    X: Tensor, *, start: Tensor | None = None, max_iter: int = 200, tol: float = 1e-9, direct_max: int = 256
) -> tuple[Tensor, Tensor, Tensor]:
    """Best rank-two approximation U diag(S) Vh of X (m x n).

    Works on the smaller Gram matrix G (X X^T when m <= n, else X^T X; p x p with
    p = min(m, n)). When p <= ``direct_max`` (a hyperspectral cluster: p is at most
    the number of bands) one symmetric eigendecomposition of G gives the two leading
    pairs. Otherwise, block power iteration on G from ``start`` (m x 2, e.g. the parent
    cluster's left singular vectors) or from the two columns of largest norm, until
    the subspace moves by less than ``tol``, then a Rayleigh-Ritz step in closed form.

    Returns U (m x 2), S (2,), Vh (2 x n); for a single column the second triplet is zero.
    """
    m, n = X.shape
    tiny = torch.finfo(X.dtype).tiny
    if n < 2:
        ramp = torch.linspace(-1, 1, m, device=X.device, dtype=X.dtype)
        norm = torch.linalg.vector_norm(X)
        U = _orthonormalize2(torch.stack([X[:, 0], ramp], dim=1))
        return U, torch.stack([norm, torch.zeros_like(norm)]), X.new_tensor([[1.0], [0.0]])
    right = n < m  # work with the right singular vectors (n-dimensional)
    A = X.transpose(0, 1) if right else X
    G = A @ A.transpose(0, 1)
    p = G.shape[0]
    if p <= direct_max:
        vals, vecs = torch.linalg.eigh(G)
        vals, V = vals[-2:].flip(0), vecs[:, -2:].flip(1)
    else:
        if start is None:
            start = X.index_select(1, torch.topk((X * X).sum(dim=0), 2).indices)
        V0 = X.transpose(0, 1) @ start if right else start
        # a fixed, deterministic perturbation keeps the block of rank two
        ramp = torch.linspace(-1, 1, p, device=X.device, dtype=X.dtype)
        V = _orthonormalize2(V0 + 1e-3 * torch.linalg.vector_norm(V0) * torch.stack([ramp.flip(0), ramp], dim=1))
        for it in range(max_iter):
            Vn = _orthonormalize2(G @ V)
            if it % 5 == 4:
                moved = torch.linalg.matrix_norm(Vn - V @ (V.transpose(0, 1) @ Vn))
                if float(moved) <= tol:
                    V = Vn
                    break
            V = Vn
        vals, vecs = _sym_eig2(V.transpose(0, 1) @ (G @ V))
        V = V @ vecs
    S = vals.clamp_min(0).sqrt()
    if right:
        return (X @ V) / S.clamp_min(tiny), S, V.transpose(0, 1)
    return V, S, (V.transpose(0, 1) @ X) / S.clamp_min(tiny).unsqueeze(1)


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


def _sigma1_sq(X: Tensor, u: Tensor, iters: int = 4) -> Tensor:
    """Squared leading singular value of X by a few power iterations started from u (m,)."""
    tiny = torch.finfo(X.dtype).tiny
    for _ in range(iters):
        u = X @ (X.transpose(0, 1) @ u)
        u = u / torch.linalg.vector_norm(u).clamp_min(tiny)
    return torch.sum((X.transpose(0, 1) @ u) ** 2)


def _representative(X: Tensor, u: Tensor) -> Tensor:
    """Column of X minimising the spectral angle with |u| after centring (0-dim int64)."""
    u = u.abs()
    u = u - u.mean()
    Xc = X - X.mean(dim=0, keepdim=True)
    cos = (u @ Xc) / (torch.linalg.vector_norm(Xc, dim=0) * torch.linalg.vector_norm(u)).clamp_min(
        torch.finfo(X.dtype).tiny
    )
    return torch.argmax(cos)


class _Leaf(NamedTuple):
    cols: Tensor
    U: Tensor  # two leading left singular vectors of X(:, cols), m x 2
    split: tuple | None  # (left cols, right cols, error reduction) or None


def _columns(Xt: Tensor, cols: Tensor) -> Tensor:
    """X(:, cols) as an m x |cols| view, gathered as rows of the contiguous X^T.

    Gathering whole rows of X^T copies contiguous memory; gathering columns of a
    row-major X is an element-by-element strided copy, several times slower.
    """
    return Xt.index_select(0, cols).transpose(0, 1)


def _leaf(Xt: Tensor, cols: Tensor, start: Tensor | None = None) -> _Leaf:
    """Analyse the cluster ``cols`` of X (given as X^T): its leading singular vectors and its best split."""
    Xc = _columns(Xt, cols)
    U, S, Vh = rank2_svd(Xc, start=start)
    u1 = U[:, 0]
    if cols.numel() < 2 or not bool(S[1] > 0):
        return _Leaf(cols, U, None)
    Y = S.unsqueeze(1) * Vh  # 2-D projection, 2 x |C|
    K = spa(Y, 2)
    # the authors' rank-two NMF: the two columns of the rank-two approximation picked by SPA,
    # clipped at 0, and H by NNLS on the cluster itself (without the clip this equals the
    # NNLS in the 2-D projection; with it a pixel near a split threshold can change sides)
    W2 = (U @ Y.index_select(1, K)).clamp_min(0)
    H = rank2_nnls(W2, Xc)
    x = H[0] / (H.sum(dim=0) + 1e-16)
    first = x >= split_threshold(x)
    left, right = cols[first], cols[~first]
    if left.numel() == 0 or right.numel() == 0:
        return _Leaf(cols, U, None)
    sl = _sigma1_sq(_columns(Xt, left), u1)
    sr = _sigma1_sq(_columns(Xt, right), u1)
    return _Leaf(cols, U, (left, right, float(sl + sr - S[0] * S[0])))


def h2nmf_clustering(X: Tensor, n_clusters: int) -> H2NMFClusters:
    r"""Hierarchical rank-two NMF clustering of the columns of X (m x n) into k clusters.

    Starting from one cluster, repeatedly split the leaf whose split reduces
    :math:`\sum_{\text{leaves}} \|X_C\|_F^2 - \sigma_1(X_C)^2` the most, until there are
    ``n_clusters`` leaves (or no leaf can be split: duplicate columns). Deterministic.

    Parameters
    ----------
    X : Tensor or array, shape (m, n)
        Nonnegative dense data; the columns are the points (pixels). Integer and
        float16 data are converted to floating point.
    n_clusters : int
        Number k of clusters, 1 <= k <= n.

    Returns
    -------
    H2NMFClusters
        ``labels`` (n,), ``representatives`` (k,) column indices of X, ``sizes`` (k,).
        Clusters are numbered in the order in which the leaves were created.

    Raises
    ------
    TypeError
        X not a dense real tensor or array; ``n_clusters`` not an integer.
    ValueError
        X not 2-D, empty, with NaN, infinite or negative entries; ``n_clusters`` not in [1, n].

    References
    ----------
    N. Gillis, D. Kuang and H. Park, "Hierarchical clustering of hyperspectral images
    using rank-two nonnegative matrix factorization", IEEE TGRS 53(4), 2015.
    """
    X = dense_tensor(X, "X")
    n = X.shape[1]
    n_clusters = check_value("h2nmf_clustering", "n_clusters", n_clusters, Integer(1, n))
    Xt = X.transpose(0, 1).contiguous()
    leaves = [_leaf(Xt, torch.arange(n, device=X.device))]
    while len(leaves) < n_clusters:
        gains = [leaf.split[2] if leaf.split is not None else -math.inf for leaf in leaves]
        best = max(range(len(leaves)), key=gains.__getitem__)
        if leaves[best].split is None:
            break  # nothing left to split (e.g. duplicated columns)
        left, right, _ = leaves[best].split
        parent = leaves.pop(best)
        leaves += [_leaf(Xt, left, parent.U), _leaf(Xt, right, parent.U)]
    labels = torch.empty(n, dtype=torch.int64, device=X.device)
    reps, sizes = [], []
    for k, leaf in enumerate(leaves):
        labels[leaf.cols] = k
        reps.append(leaf.cols[_representative(_columns(Xt, leaf.cols), leaf.U[:, 0])])
        sizes.append(leaf.cols.numel())
    return H2NMFClusters(labels, torch.stack(reps), torch.tensor(sizes, dtype=torch.int64, device=X.device))
