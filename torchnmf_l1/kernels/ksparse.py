r"""k-sparse least squares codes, and the identifiability condition of low-rank sparse component analysis.

For W (m x r) and every column x of X (m x n),

.. math:: \min_{h \ge 0,\ \|h\|_0 \le k} \tfrac12 \|x - W h\|_2^2
   \qquad\text{(or without } h \ge 0 \text{: the sign-free variant)} .

Exact method (``method="exact"``): the optimum h* is the unconstrained least-squares
solution on its own positive support S* (the KKT conditions make the gradient vanish
there), and every support of size <= k whose least-squares solution is nonnegative is
a feasible point. So the best *nonnegative* unconstrained LS solution over all
supports of size <= k (the empty support included) is exactly the k-sparse NNLS
optimum: no inner NNLS is needed, only the :math:`\sum_{s \le k}\binom{r}{s}` tiny
s x s systems, solved for all columns in one batched solve per size. Without the sign
constraint every support is feasible and the best one wins.

Greedy method (``method="greedy"``, for larger r): (nonnegative) orthogonal matching
pursuit: k times, add to each column's support the index of most negative gradient
(largest absolute gradient without signs) and re-solve the least squares restricted to
the support (the package's HALS routine with the entries outside the support forced
to zero; a masked batched solve without signs).

Both work on batches (W of shape (B, m, r), X of shape (m, n) or (B, m, n)) and never
read the device: the low-rank sparse component analysis solver
(:mod:`torchnmf_l1.solvers.sparse`) calls them inside its step.

:func:`sparse_identifiability` checks the sufficient condition of Cohen and Gillis (2019,
Theorem 3) under which M = AB with k-sparse columns of B is essentially unique.

References
----------
N. Nadisic, A. Vandaele, N. Gillis and J. E. Cohen, "Exact sparse nonnegative least
squares", ICASSP 2020.
J. E. Cohen and N. Gillis, "Identifiability of complete dictionary learning", SIAM J.
Mathematics of Data Science 1(3), 2019 (arXiv:1808.08765, "Identifiability of low-rank
sparse component analysis").
T. T. Nguyen, J. Idier, C. Soussen and E.-H. Djermoune, "Non-negative orthogonal
greedy algorithms", IEEE Trans. Signal Processing 67(21), 2019.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..checks import dense_tensor, same_dtype_and_device
from ..params import Boolean, Choice, Integer, Number, check_value
from .nnls import gram_ridge, hals_nnls_

__all__ = ["ksparse_nnls", "ksparse_codes", "support_sets", "sparse_identifiability", "SparseIdentifiability",
           "largest_spark_set"]

# entries of the per-support solutions held at once by the exact method (columns are cut in blocks)
_EXACT_BLOCK_ELEMENTS = 1 << 22


def _check(W, X, k, method, max_sweeps, nonnegative) -> tuple[Tensor, Tensor, int, str]:
    check_value("ksparse_nnls", "nonnegative", nonnegative, Boolean())
    W = dense_tensor(W, "W", nonnegative=nonnegative)
    X = dense_tensor(X, "X", dtype=W.dtype if not isinstance(X, Tensor) or not X.is_floating_point() else None,
                     nonnegative=nonnegative)
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


def ksparse_nnls(W: Tensor, X: Tensor, k: int, *, method: str = "exact", max_sweeps: int = 200,
                 nonnegative: bool = True) -> Tensor:
    r"""Column-wise k-sparse NNLS: :math:`\min_{H \ge 0} \|X - WH\|_F` with at most k nonzeros per column of H.

    Parameters
    ----------
    W : Tensor, shape (m, r)
        Dictionary (basis); dense; nonnegative unless ``nonnegative=False``.
    X : Tensor, shape (m, n)
        Dense data; nonnegative unless ``nonnegative=False``.
    k : int
        Maximum number of nonzeros per column, 1 <= k <= r.
    method : {"exact", "greedy"}
        ``"exact"`` solves every support of size <= k at once (cost grows like
        :math:`\binom{r}{k}`; fine for r up to ~20 with small k). ``"greedy"`` is
        (nonnegative) orthogonal matching pursuit (k restricted solves; not always optimal).
    max_sweeps : int
        HALS sweeps per greedy step (nonnegative greedy only).
    nonnegative : bool
        False drops :math:`H \ge 0` (and the sign checks of W and X): k-sparse least
        squares, the coding step of sign-free sparse component analysis.

    Returns
    -------
    Tensor, shape (r, n)
        H on W's device and dtype; every column has at most k nonzeros.

    Raises
    ------
    TypeError
        W or X not a dense real tensor or array, of different floating dtypes.
    ValueError
        Not 2-D, empty, NaN, infinite or (with ``nonnegative``) negative entries,
        different row counts or devices; k not in [1, r]; an unknown method; max_sweeps < 1.
    """
    W, X, r, method = _check(W, X, k, method, max_sweeps, nonnegative)
    return ksparse_codes(W, X, k, method=method, nonnegative=nonnegative, max_sweeps=max_sweeps)


def support_sets(r: int, k: int, device=None) -> list[Tensor]:
    """The supports of sizes 1..k of r indices: one int64 tensor (C_s x s) per size s."""
    return [torch.tensor(list(itertools.combinations(range(r), s)), device=device, dtype=torch.int64)
            for s in range(1, k + 1)]


def ksparse_codes(W: Tensor, X: Tensor, k: int, *, method: str = "exact", nonnegative: bool = True,
                  max_sweeps: int = 200, supports: list[Tensor] | None = None) -> Tensor:
    """The k-sparse codes of :func:`ksparse_nnls` without validation, on batches, never reading the device.

    Parameters
    ----------
    W : Tensor, shape (m, r) or (B, m, r)
    X : Tensor, shape (m, n) or (B, m, n)
        A 2-D X is shared by every W of a batch.
    k, method, nonnegative, max_sweeps :
        As in :func:`ksparse_nnls`.
    supports : list of Tensor, optional
        :func:`support_sets` of (r, k) on W's device, for the exact method (built here when
        None: a copy to the device, which a solver makes once).

    Returns
    -------
    Tensor, shape (r, n) or (B, r, n)
    """
    G = W.mT @ W
    A = W.mT @ X
    if method == "exact":
        if supports is None:
            supports = support_sets(W.shape[-1], k, W.device)
        return _exact(G, A, supports, nonnegative)
    return _greedy(G, A, k, nonnegative, max_sweeps)


def _exact(G: Tensor, A: Tensor, supports: list[Tensor], nonnegative: bool) -> Tensor:
    n = A.shape[-1]
    lead = A.shape[:-2]
    largest = max(s.shape[0] * s.shape[1] for s in supports)
    block = max(1, _EXACT_BLOCK_ELEMENTS // max(1, largest * math.prod(lead)))
    return torch.cat([_exact_block(G, A[..., start:start + block], supports, nonnegative)
                      for start in range(0, n, block)], dim=-1)


def _exact_block(G: Tensor, A: Tensor, supports: list[Tensor], nonnegative: bool) -> Tensor:
    r, n = A.shape[-2:]
    lead = A.shape[:-2]
    ridge = gram_ridge(G)[..., None, None, None]
    # the residual 0.5||x||^2 - (a_S^T z_S - 0.5 z_S^T G_S z_S) = 0.5||x||^2 - 0.5 a_S^T z_S at z_S = G_S^{-1} a_S
    best_gain = A.new_zeros(lead + (n,))  # the empty support
    best = A.new_zeros(lead + (r, n))
    for support in supports:
        s = support.shape[1]
        Gs = G[..., support[:, :, None], support[:, None, :]]  # (.., C, s, s)
        Gs = Gs + ridge * torch.eye(s, device=G.device, dtype=G.dtype)
        As = A[..., support, :]  # (.., C, s, n)
        Z = torch.linalg.solve_ex(Gs, As, check_errors=False)[0]
        gain = 0.5 * (As * Z).sum(dim=-2)  # (.., C, n)
        if nonnegative:
            gain = gain.masked_fill(~(Z >= 0).all(dim=-2), -torch.inf)
        value, which = gain.max(dim=-2)  # (.., n)
        better = value > best_gain
        best_gain = torch.where(better, value, best_gain)
        chosen = Z.gather(-3, which[..., None, None, :].expand(lead + (1, s, n))).squeeze(-3)  # (.., s, n)
        rows = support[which].movedim(-1, -2)  # (.., s, n)
        candidate = A.new_zeros(lead + (r, n)).scatter_(-2, rows, chosen)
        best = torch.where(better[..., None, :], candidate, best)
    return best


def _greedy(G: Tensor, A: Tensor, k: int, nonnegative: bool, max_sweeps: int) -> Tensor:
    H = torch.zeros_like(A)
    support = torch.zeros(A.shape, dtype=torch.bool, device=A.device)
    for _ in range(k):
        gradient = G @ H - A
        score = -gradient if nonnegative else gradient.abs()
        value, pick = score.masked_fill(support, -torch.inf).max(dim=-2)
        grow = value > 0  # a descent direction exists
        support = support | torch.zeros_like(support).scatter_(-2, pick.unsqueeze(-2), grow.unsqueeze(-2))
        if nonnegative:
            hals_nnls_(H, A.masked_fill(~support, -torch.inf), G, max_sweeps=max_sweeps, delta=1e-6)
            H = torch.where(support, H, 0.0)
        else:
            H = _masked_least_squares(G, A, support)
    return H


def _masked_least_squares(G: Tensor, A: Tensor, support: Tensor) -> Tensor:
    # per column: solve G_S z_S = a_S, z = 0 off S, as one (.., n, r, r) system with identity rows off S
    eye = torch.eye(G.shape[-1], device=G.device, dtype=G.dtype)
    S = support.mT.to(G.dtype)  # (.., n, r)
    system = G.unsqueeze(-3) * S[..., :, None] * S[..., None, :] + eye * (1 - S)[..., None, :]
    system = system + gram_ridge(G)[..., None, None, None] * eye  # the ridge of the whole G
    rhs = (A.mT * S).unsqueeze(-1)  # (.., n, r, 1)
    return torch.linalg.solve_ex(system, rhs, check_errors=False)[0].squeeze(-1).mT


@dataclass
class SparseIdentifiability:
    r"""The sufficient condition of essential uniqueness of M = AB with k-sparse columns of B, checked.

    Cohen and Gillis (2019, Theorem 3): if A (m x R) has rank R, every column of B has at
    most k < R nonzeros, and for every i the data points on the hyperplane
    :math:`\operatorname{span}(A(:, j \ne i))` (the columns j with :math:`B(i, j) = 0`)
    include at least :math:`\lfloor R(R-2)/(R-k) \rfloor + 1` points with spark R (any
    R - 1 of them linearly independent), then (A, B) is essentially unique: any other
    factorization with R columns and k-sparse codes equals it up to permutation and scaling.

    Attributes
    ----------
    condition_met : bool
        The condition holds (found: a subset of the required size with spark R on every hyperplane).
    rank : int
        R, the number of columns of A.
    k : int
        The sparsity checked (the largest number of nonzeros of a column of B unless given).
    rank_of_A : int
    required : int
        :math:`\lfloor R(R-2)/(R-k) \rfloor + 1` (0 when k >= R: no condition applies).
    points : list of int
        Per hyperplane i: the nonzero columns of B with B(i, j) = 0.
    found : list of int
        Per hyperplane: the size of the spark-R subset found (at most ``required``).
    complete : list of bool
        Per hyperplane: True when ``found`` is final: the subset was found, or an exhaustive
        search proved there is none; False when the search was cut at ``max_nodes``.
    largest_possible : int or None
        :math:`\lfloor (R-1)(R-2)/(R-k-1) \rfloor`, the most k-sparse points of one hyperplane
        that can have spark R (None for k = R - 1: no bound); when it is below ``required``
        no data meets the condition (e.g. R = 6, k = 2: 6 < 7).
    reason : str
        Why the condition is not met ("" when it is).
    """

    condition_met: bool
    rank: int
    k: int
    rank_of_A: int
    required: int
    points: list = field(default_factory=list)
    found: list = field(default_factory=list)
    complete: list = field(default_factory=list)
    largest_possible: int | float | None = None
    reason: str = ""

    @property
    def satisfied(self) -> list:
        """Per hyperplane: a large enough subset with spark R was found."""
        return [f >= self.required for f in self.found]


def sparse_identifiability(A: Tensor, B: Tensor, k: int | None = None, *, zero_tol: float = 0.0,
                           rank_tol: float | None = None, max_nodes: int = 100_000) -> SparseIdentifiability:
    r"""Check the identifiability condition of low-rank sparse component analysis for M = AB.

    On each hyperplane i (the columns j with :math:`|B(i, j)| \le` ``zero_tol`` max|B|),
    a greedy scan in column order keeps a point when every R - 1 of the kept points stay
    linearly independent; when it stops short of the required number, a depth-first
    search over the subsets (at most ``max_nodes`` nodes) looks for another one. Linear
    independence of data points is that of their columns of B (A has full column rank),
    tested on the unit-normalised columns restricted to the rows j != i.

    Parameters
    ----------
    A : Tensor or array, shape (m, R)
        The components (any sign).
    B : Tensor or array, shape (R, n)
        The codes (any sign).
    k : int, optional
        The sparsity of the model, 1 <= k; default: the largest number of nonzeros of a
        column of B. A column of B with more than k nonzeros fails the condition.
    zero_tol : float
        Entries with :math:`|B_{ij}| \le` ``zero_tol`` max|B| count as zeros (0: exact zeros,
        as the k-sparse coding produces).
    rank_tol : float, optional
        A set of unit vectors is independent when its smallest singular value exceeds this
        (default: :math:`\sqrt{\epsilon}` of B's dtype).
    max_nodes : int
        Budget of the exhaustive search per hyperplane.

    Returns
    -------
    SparseIdentifiability

    Raises
    ------
    TypeError, ValueError
        A or B not dense real matrices, NaN or infinite entries, R = A's columns different
        from B's rows; k < 1; a negative tolerance; max_nodes < 1.

    References
    ----------
    J. E. Cohen and N. Gillis, "Identifiability of complete dictionary learning", SIAM J.
    Mathematics of Data Science 1(3), 2019, Theorem 3.
    """
    A = dense_tensor(A, "A", nonnegative=False)
    B = dense_tensor(B, "B", nonnegative=False)
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"A (m x R) and B (R x n) must share R, got shapes {tuple(A.shape)} and {tuple(B.shape)}")
    check_value("sparse_identifiability", "zero_tol", zero_tol, Number(0))
    check_value("sparse_identifiability", "max_nodes", max_nodes, Integer(1))
    if rank_tol is None:
        rank_tol = math.sqrt(torch.finfo(B.dtype).eps)
    check_value("sparse_identifiability", "rank_tol", rank_tol, Number(0))
    A64, B64 = A.detach().to("cpu", torch.float64), B.detach().to("cpu", torch.float64)
    R = A.shape[1]
    nonzero = B64.abs() > zero_tol * float(B64.abs().max())
    per_column = nonzero.sum(dim=0)
    largest = int(per_column.max())
    if k is None:
        k = max(largest, 1)
    check_value("sparse_identifiability", "k", k, Integer(1))
    rank_of_A = int(torch.linalg.matrix_rank(A64))
    report = SparseIdentifiability(False, R, k, rank_of_A, 0)
    if k >= R:
        report.reason = f"k = {k} >= R = {R}: the columns of B have no zero, no hyperplane holds data"
        return report
    report.required = R * (R - 2) // (R - k) + 1
    if rank_of_A < R:
        report.reason = f"A has rank {rank_of_A} < R = {R}"
        return report
    if largest > k:
        report.reason = f"{int((per_column > k).sum())} columns of B have more than k = {k} nonzeros (up to {largest})"
        return report
    report.largest_possible = largest_spark_set(R, k)
    if report.largest_possible < report.required:
        report.reason = (f"no data can meet it for R = {R}, k = {k}: at most {report.largest_possible} k-sparse points "
                         f"of a hyperplane have spark {R} (each lies on R - k - 1 of its R - 1 subspaces of dimension "
                         f"R - 2, which hold at most R - 2 of them each), {report.required} are needed")
        return report
    used = per_column > 0
    for i in range(R):
        others = [j for j in range(R) if j != i]
        on_plane = used & ~nonzero[i]
        V = torch.nn.functional.normalize(B64[others][:, on_plane], dim=0)
        found, complete = _spark_subset(V, report.required, rank_tol, max_nodes)
        report.points.append(int(on_plane.sum()))
        report.found.append(found)
        report.complete.append(complete)
    short = [i for i, f in enumerate(report.found) if f < report.required]
    report.condition_met = not short
    if short:
        report.reason = (f"hyperplanes {short} hold fewer than {report.required} points with spark {R} "
                         f"(found {[report.found[i] for i in short]} among {[report.points[i] for i in short]} points)")
    return report


def largest_spark_set(R: int, k: int) -> int | float:
    r"""The most points with at most k nonzeros (k < R) on one hyperplane of R components that can have spark R.

    Each such point has a zero at the hyperplane's index and at least R - k - 1 more, so it
    lies on R - k - 1 of the R - 1 subspaces of dimension R - 2 cut in the hyperplane by the
    others; a set with spark R puts at most R - 2 points in each, hence
    :math:`p (R - k - 1) \le (R - 1)(R - 2)`. Infinite (``math.inf``) for k = R - 1.
    """
    if k >= R - 1:
        return math.inf
    return (R - 1) * (R - 2) // (R - k - 1)


def _independent_with(V: Tensor, chosen: list[int], j: int, tol: float) -> bool:
    """Whether adding column j to the chosen columns keeps every R - 1 of them independent."""
    size = min(len(chosen), V.shape[0] - 1)
    combos = list(itertools.combinations(chosen, size))
    subsets = torch.tensor(combos, dtype=torch.int64).reshape(len(combos), size)
    mats = torch.cat([V[:, subsets].movedim(1, 0), V[:, j].expand(subsets.shape[0], -1).unsqueeze(-1)], dim=-1)
    return bool((torch.linalg.svdvals(mats)[..., -1] > tol).all())


def _spark_subset(V: Tensor, required: int, tol: float, max_nodes: int) -> tuple[int, bool]:
    """The size of a subset of V's columns with spark V.shape[0] + 1 (found greedily, then by search), capped at
    ``required``, and whether that answer is final."""
    n = V.shape[1]
    chosen: list[int] = []
    for j in range(n):
        if _independent_with(V, chosen, j, tol):
            chosen.append(j)
            if len(chosen) == required:
                return required, True
    best = len(chosen)
    nodes = 0

    def search(path: list[int], start: int) -> bool:
        nonlocal best, nodes
        best = max(best, len(path))
        if len(path) == required:
            return True
        for j in range(start, n - (required - len(path)) + 1):
            nodes += 1
            if nodes > max_nodes:
                return False
            if _independent_with(V, path, j, tol) and search(path + [j], j + 1):
                return True
        return False

    if search([], 0):
        return required, True
    return min(best, required), nodes <= max_nodes
