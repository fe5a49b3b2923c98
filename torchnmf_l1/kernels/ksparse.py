r"""k-sparse nonnegative least squares (low-rank sparse component analysis).

For fixed W (m x r) and every column x of X (m x n),

.. math:: \min_{h \ge 0,\ \|h\|_0 \le k} \tfrac12 \|x - W h\|_2^2 .

Exact method (``method="exact"``): the optimum h* is the unconstrained least-squares
solution on its own positive support S* (the KKT conditions make the gradient vanish
there), and every support of size <= k whose least-squares solution is nonnegative is
a feasible point. So the best *nonnegative* unconstrained LS solution over all
supports of size <= k (the empty support included) is exactly the k-sparse NNLS
optimum: no inner NNLS is needed, only the :math:`\sum_{s \le k}\binom{r}{s}` tiny
s x s systems, solved for all columns in one batched ``torch.linalg.solve`` per size.

Greedy method (``method="greedy"``, for larger r): nonnegative orthogonal matching
pursuit: k times, add to each column's support the index of most negative gradient
and re-solve the NNLS restricted to the support with the package's HALS routine
(``hals_nnls_`` with the entries outside the support forced to zero).

References
----------
N. Nadisic, A. Vandaele, N. Gillis and J. E. Cohen, "Exact sparse nonnegative least
squares", ICASSP 2020.
N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020 (sparse NMF and
low-rank sparse component analysis).
T. T. Nguyen, J. Idier, C. Soussen and E.-H. Djermoune, "Non-negative orthogonal
greedy algorithms", IEEE Trans. Signal Processing 67(21), 2019.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..checks import dense_tensor, same_dtype_and_device
from ..params import Choice, Integer, check_value
from .nnls import hals_nnls_

__all__ = ["ksparse_nnls"]


def _check(W, X, k, method, max_sweeps) -> tuple[Tensor, Tensor, int, str]:
    W = dense_tensor(W, "W")
    X = dense_tensor(X, "X", dtype=W.dtype if not isinstance(X, Tensor) or not X.is_floating_point() else None)
    same_dtype_and_device({"W": W, "X": X})
    if W.shape[0] != X.shape[0]:
        raise ValueError(f"W (m x r) and X (m x n) must share m, got shapes {tuple(W.shape)} and {tuple(X.shape)}")
    r = W.shape[1]
    check_value("ksparse_nnls", "k", k, Integer(1))
    if k > r:
        raise ValueError(f"k must be <= r = {r} (the number of columns of W), got k={k}")
    method = check_value("ksparse_nnls", "method", method, Choice("exact", "greedy"))
    check_value("ksparse_nnls", "max_sweeps", max_sweeps, Integer(1))
    return W, X, r, method


def ksparse_nnls(W: Tensor, X: Tensor, k: int, *, method: str = "exact", max_sweeps: int = 200) -> Tensor:
    r"""Column-wise k-sparse NNLS: :math:`\min_{H \ge 0} \|X - WH\|_F` with at most k nonzeros per column of H.

    Parameters
    ----------
    W : Tensor, shape (m, r)
        Dictionary (basis); dense.
    X : Tensor, shape (m, n)
        Dense data.
    k : int
        Maximum number of nonzeros per column, 1 <= k <= r.
    method : {"exact", "greedy"}
        ``"exact"`` solves every support of size <= k at once (cost grows like
        :math:`\binom{r}{k}`; fine for r up to ~20 with small k). ``"greedy"`` is
        nonnegative orthogonal matching pursuit (k HALS-NNLS solves; not always optimal).
    max_sweeps : int
        HALS sweeps per greedy step.

    Returns
    -------
    Tensor, shape (r, n)
        H on W's device and dtype; every column has at most k nonzeros.

    Raises
    ------
    TypeError
        W or X not a dense real tensor or array, of different floating dtypes.
    ValueError
        Not 2-D, empty, NaN, infinite or negative entries, different row counts or
        devices; k not in [1, r]; an unknown method; max_sweeps < 1.
    """
    W, X, r, method = _check(W, X, k, method, max_sweeps)
    if method == "exact":
        return _exact(W, X, k, r)
    return _greedy(W, X, k, r, max_sweeps)


def _exact(W: Tensor, X: Tensor, k: int, r: int) -> Tensor:
    n = X.shape[1]
    G = W.transpose(0, 1) @ W  # r x r
    A = W.transpose(0, 1) @ X  # r x n
    ridge = torch.finfo(W.dtype).eps * torch.diagonal(G).amax().clamp_min(torch.finfo(W.dtype).tiny)
    # best reduction of the residual 0.5||x||^2 - (a_S^T z_S - 0.5 z_S^T G_S z_S) = 0.5||x||^2 - 0.5 a_S^T z_S
    best_gain = X.new_zeros(n)  # empty support
    best_H = X.new_zeros(r, n)
    for s in range(1, k + 1):
        supports = torch.tensor(list(itertools.combinations(range(r), s)), device=W.device, dtype=torch.int64)  # C x s
        Gs = G[supports[:, :, None], supports[:, None, :]]  # C x s x s
        Gs = Gs + ridge * torch.eye(s, device=W.device, dtype=W.dtype)
        As = A[supports]  # C x s x n
        Z = torch.linalg.solve(Gs, As)  # C x s x n
        gain = 0.5 * (As * Z).sum(dim=1)  # C x n
        feasible = (Z >= 0).all(dim=1)
        gain = torch.where(feasible, gain, torch.full_like(gain, -torch.inf))
        value, which = gain.max(dim=0)  # n
        better = value > best_gain
        best_gain = torch.where(better, value, best_gain)
        cols = torch.arange(n, device=W.device)
        Zbest = Z[which, :, cols]  # n x s
        candidate = X.new_zeros(r, n)
        candidate.scatter_(0, supports[which].transpose(0, 1), Zbest.transpose(0, 1))
        best_H = torch.where(better[None, :], candidate, best_H)
    return best_H


def _greedy(W: Tensor, X: Tensor, k: int, r: int, max_sweeps: int) -> Tensor:
    n = X.shape[1]
    G = W.transpose(0, 1) @ W
    A = W.transpose(0, 1) @ X
    H = X.new_zeros(r, n)
    support = torch.zeros(r, n, dtype=torch.bool, device=W.device)
    cols = torch.arange(n, device=W.device)
    for _ in range(k):
        gradient = G @ H - A
        gradient = gradient.masked_fill(support, torch.inf)
        value, pick = gradient.min(dim=0)
        # only grow where a descent direction exists (gradient < 0)
        grow = value < 0
        support[pick[grow], cols[grow]] = True
        masked_A = A.masked_fill(~support, -torch.inf)  # forces H = 0 off the support
        hals_nnls_(H, masked_A, G, max_sweeps=max_sweeps, delta=1e-6)
        H = torch.where(support, H, torch.zeros_like(H))
    return H
