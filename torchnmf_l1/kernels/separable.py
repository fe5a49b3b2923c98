r"""Kernels of separable NMF: SPA, SNPA, XRAY, VCA, simplex and Omega projections.

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

from .momentum import MomentumState, accelerated_update
from .nnls import nnls_columns

__all__ = ["spa", "snpa", "xray", "vca", "project_simplex", "simplex_nnls", "project_omega"]


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
        j = _pick(residual, original, tie_tol)
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


def _pick(residual: Tensor, original: Tensor, tie_tol: float) -> Tensor:
    """Index of the largest residual, near ties broken by the largest original norm (0-dim int64)."""
    best = residual.max()
    near = (best - residual) <= tie_tol * best.abs()
    return torch.argmax(torch.where(near, original, torch.full_like(original, -torch.inf)))


def project_simplex(Y: Tensor, *, inequality: bool = False) -> Tensor:
    r"""Euclidean projection of every column of Y onto the unit simplex, batched.

    ``inequality=False``: :math:`\Delta = \{x \ge 0, \sum_i x_i = 1\}`;
    ``inequality=True``: :math:`\Delta^{\le} = \{x \ge 0, \sum_i x_i \le 1\}` (the convex
    hull of the unit vectors and the origin). Sort-based, O(r log r) per column, no loop
    over columns (Duchi et al., 2008).

    Parameters
    ----------
    Y : Tensor, shape (r, n)

    Returns
    -------
    Tensor, shape (r, n)
    """
    return _project_simplex_rows(Y.transpose(0, 1).contiguous(), inequality).transpose(0, 1)


def _project_simplex_rows(Y: Tensor, inequality: bool) -> Tensor:
    """:func:`project_simplex` on the rows of Y (n x r): the sort runs along contiguous memory."""
    r = Y.shape[1]
    U, _ = torch.sort(Y, dim=1, descending=True)
    css = torch.cumsum(U, dim=1) - 1
    ranks = torch.arange(1, r + 1, device=Y.device, dtype=Y.dtype)
    count = ((U - css / ranks) > 0).sum(dim=1, keepdim=True).clamp_min(1)
    theta = torch.gather(css, 1, count - 1) / count.to(Y.dtype)
    if inequality:
        # the nonnegative part when it already sums to <= 1, else the projection on sum = 1
        theta = torch.where(Y.clamp_min(0).sum(dim=1, keepdim=True) <= 1, torch.zeros_like(theta), theta)
    return (Y - theta).clamp_min(0)


def simplex_nnls(
    X: Tensor,
    W: Tensor,
    H0: Tensor | None = None,
    *,
    max_iter: int = 500,
    tol: float = 1e-6,
    check_every: int = 10,
) -> Tensor:
    r"""Projection of the columns of X onto conv(W, 0) by a fast gradient method.

    .. math:: \min_{H} \tfrac12 \|X - WH\|_F^2 \quad\text{s.t.}\quad H \ge 0,\; \textstyle\sum_k H_{kj} \le 1

    The problem splits into n independent problems, one per column. Each runs
    Nesterov's accelerated projected gradient with step 1/L, L = ||W^T W||_2, and a
    restart: a column whose objective rises keeps its previous value and loses its
    momentum (the next step is then a plain projected gradient step, so the objective
    never increases). Each column stops after ``max_iter`` iterations or when, at a
    check (every ``check_every`` iterations, one host sync), its Frank-Wolfe gap

    .. math:: g_j = \nabla f_j(h_j)^T h_j - \min\big(0, \min_k \nabla f_j(h_j)_k\big)
              \;\ge\; f_j(h_j) - \min_{h \in \Delta^{\le}} f_j(h)

    is at most ``tol`` times a lower bound of the largest optimal half squared residual,
    :math:`\max_l (\tfrac12\|x_l - W h_l\|^2 - g_l)` (or at the round-off level
    :math:`10\, r\, \epsilon\, \tfrac12 \|x_j\|^2`): the error of every squared residual
    is then at most ``2 tol`` times the largest one, the precision SNPA's selection needs. Stopped
    columns leave the iteration, so late iterations touch only the few columns still
    moving. Per iteration: one (n_active x r) by (r x r) product :math:`H W^TW`, reused
    for the gradient at the extrapolated point, the objective and the gap.

    Parameters
    ----------
    X : Tensor, shape (m, n)
    W : Tensor, shape (m, r)
    H0 : Tensor, shape (r, n), optional
        Warm start (projected onto the feasible set); zeros when None.
    max_iter, tol, check_every :
        Stopping rule, per column (see above); ``tol=0`` runs ``max_iter`` iterations
        on every column.

    Returns
    -------
    Tensor, shape (r, n)

    References
    ----------
    N. Gillis, "Successive nonnegative projection algorithm for robust nonnegative
    blind source separation", SIAM J. Imaging Sciences 7(2), 2014.
    B. O'Donoghue and E. Candès, "Adaptive restart for accelerated gradient schemes",
    Found. Comput. Math. 15, 2015.
    M. Jaggi, "Revisiting Frank-Wolfe: projection-free sparse convex optimization",
    ICML 2013 (the duality gap used as the stopping rule).
    """
    r, n = W.shape[1], X.shape[1]
    # rows are the columns of the problem (n x r layout): the sorts and sums run along
    # contiguous memory, and dropping converged columns is a row selection
    G = W.transpose(0, 1) @ W
    B = X.transpose(0, 1) @ W
    L = torch.linalg.eigvalsh(G)[-1].clamp_min(torch.finfo(X.dtype).tiny)
    out = X.new_zeros(n, r) if H0 is None else _project_simplex_rows(H0.transpose(0, 1).contiguous(), True)
    active = torch.arange(n, device=X.device)
    half_sq = 0.5 * (X * X).sum(dim=0)
    # round-off level of the gap (its terms are of the size of ||x_j||^2)
    floor = 10 * r * torch.finfo(X.dtype).eps * half_sq
    top_done = half_sq.new_zeros(())
    b = B
    HG = out @ G
    state = MomentumState(out, HG, out, HG, X.new_ones(n), (out * (0.5 * HG - b)).sum(dim=1))
    for it in range(1, max_iter + 1):
        Hn = _project_simplex_rows(state.y - (state.ay - b) / L, True)
        HnG = Hn @ G
        state = accelerated_update(state, Hn, HnG, (Hn * (0.5 * HnG - b)).sum(dim=1))
        last = it == max_iter
        if tol > 0 and it % check_every == 0 and not last:
            # Frank-Wolfe gap of the kept iterate: an upper bound on f_j(H_j) - min f_j, so on
            # the error of the squared residual ||x_j - W h_j||^2 = 2 f_j + ||x_j||^2 (over 2)
            g = state.ax - b
            gap = (g * state.x).sum(dim=1) - g.amin(dim=1).clamp_max(0)
            # lower bounds of the optimal half squared residuals; their max bounds the largest
            low = state.f + half_sq[active] - gap
            top = torch.maximum(low.max(), top_done)
            done = gap <= torch.maximum(tol * top, floor[active])
            if bool(done.any()):
                out.index_copy_(0, active.masked_select(done), state.x[done])
                top_done = torch.maximum(top_done, low[done].max())
                go = ~done
                if not bool(go.any()):
                    return out.transpose(0, 1)
                active, b = active[go], b[go]
                state = MomentumState(*(t[go] for t in state))
    out.index_copy_(0, active, state.x)
    return out.transpose(0, 1)


def snpa(X: Tensor, rank: int, *, tie_tol: float = 1e-6, max_iter: int = 200) -> tuple[Tensor, Tensor]:
    r"""Successive nonnegative projection algorithm (SNPA), O(mnr) per inner iteration.

    Like SPA, but the residual is the distance of each column to the convex hull of
    the selected columns and the origin, computed by :func:`simplex_nnls`:
    :math:`R = X - X(:,K)H` with :math:`H \ge 0, \mathbf{1}^T H \le \mathbf{1}^T`.
    Near ties of the residual norm are broken by the original norm, as in :func:`spa`.

    Returns
    -------
    indices : Tensor of int64, shape (rank,)
        Selected columns in selection order.
    H : Tensor, shape (rank, n)
        The last conv-hull weights.

    References
    ----------
    N. Gillis, "Successive nonnegative projection algorithm for robust nonnegative
    blind source separation", SIAM J. Imaging Sciences 7(2), 2014.
    """
    m, n = X.shape
    if rank > min(m, n):
        raise ValueError(f"rank must be <= min(m, n) = {min(m, n)}, got {rank}")
    original = (X * X).sum(dim=0)
    residual = original.clone()
    picks: list[Tensor] = []
    H = X.new_zeros(0, n)
    for _ in range(rank):
        j = _pick(residual, original, tie_tol)
        picks.append(j)
        K = torch.stack(picks)
        W = X.index_select(1, K)
        H = simplex_nnls(X, W, torch.cat([H, X.new_zeros(1, n)]), max_iter=max_iter)
        R = X - W @ H
        residual = (R * R).sum(dim=0)
        residual.index_fill_(0, K, 0)
    return torch.stack(picks), H


def xray(X: Tensor, rank: int, *, max_sweeps: int = 500, delta: float = 1e-6) -> tuple[Tensor, Tensor]:
    r"""XRAY, "max" variant: conical-hull detection by residual-guided extreme rays.

    At step k, take the column i of largest residual norm, select
    :math:`j = \arg\max_{j \notin K} R_{:,i}^T X_{:,j} / (\mathbf{1}^T X_{:,j})`, and refit
    :math:`H = \arg\min_{H \ge 0} \|X - X(:,K)H\|_F` with the shared HALS NNLS
    (:func:`~torchnmf_l1.kernels.nnls_columns`, warm-started).

    Returns
    -------
    indices : Tensor of int64, shape (rank,)
    H : Tensor, shape (rank, n)

    References
    ----------
    A. Kumar, V. Sindhwani and P. Kambadur, "Fast conical hull algorithms for
    near-separable non-negative matrix factorization", ICML 2013.
    """
    m, n = X.shape
    if rank > min(m, n):
        raise ValueError(f"rank must be <= min(m, n) = {min(m, n)}, got {rank}")
    sums = X.sum(dim=0)
    excluded = sums <= 0
    denom = torch.where(excluded, torch.ones_like(sums), sums)
    R = X
    picks: list[Tensor] = []
    H = X.new_zeros(0, n)
    for _ in range(rank):
        i = torch.argmax((R * R).sum(dim=0))
        score = (R.index_select(1, i.reshape(1)).squeeze(1) @ X) / denom
        score = score.masked_fill(excluded, -torch.inf)
        if picks:
            score.index_fill_(0, torch.stack(picks), -torch.inf)
        picks.append(torch.argmax(score))
        W = X.index_select(1, torch.stack(picks))
        H = nnls_columns(X, W, torch.cat([H, X.new_zeros(1, n)]), max_sweeps=max_sweeps, delta=delta)
        R = X - W @ H
    return torch.stack(picks), H


def vca(X: Tensor, rank: int, *, generator: torch.Generator | None = None) -> Tensor:
    r"""Vertex component analysis (high-SNR branch), seeded.

    Projects X on its r leading left singular vectors, applies the projective
    scaling :math:`y_j = x_j / (u^T x_j)` with u the mean of the projected data, then
    picks r times the point of largest :math:`|f^T y_j|` with f a random direction
    (drawn from ``generator``) orthogonal to the points already picked.

    Returns
    -------
    Tensor of int64, shape (rank,)

    References
    ----------
    J. M. P. Nascimento and J. M. Bioucas-Dias, "Vertex component analysis: a fast
    algorithm to unmix hyperspectral data", IEEE TGRS 43(4), 2005.
    """
    from .linalg import truncated_svd

    m, n = X.shape
    if rank > min(m, n):
        raise ValueError(f"rank must be <= min(m, n) = {min(m, n)}, got {rank}")
    _, S, Vh = truncated_svd(X, rank, generator=generator)
    Xp = S.unsqueeze(1) * Vh  # U^T X, r x n
    u = Xp.mean(dim=1)
    scale = u @ Xp
    tiny = torch.finfo(X.dtype).tiny
    scale = torch.where(scale.abs() > tiny, scale, torch.full_like(scale, tiny))
    Y = Xp / scale
    A = X.new_zeros(rank, rank)
    A[rank - 1, 0] = 1
    picks = []
    for i in range(rank):
        w = torch.randn(rank, generator=generator, device=X.device, dtype=X.dtype)
        f = w - A @ (torch.linalg.pinv(A) @ w)
        f = f / torch.linalg.vector_norm(f).clamp_min(tiny)
        j = torch.argmax((f @ Y).abs())
        A[:, i] = Y[:, j]
        picks.append(j)
    return torch.stack(picks)


def project_omega(Y: Tensor, weights: Tensor | None = None) -> Tensor:
    r"""Exact projection of a square matrix onto Omega, all rows at once.

    .. math:: \Omega = \{X \in \mathbb{R}^{n \times n} : X \ge 0,\; X_{ii} \le 1,\;
              w_i X_{ij} \le w_j X_{ii}\ \forall i, j\}

    The problem splits into rows. For row i and a fixed diagonal value t, the optimal
    off-diagonal entries are :math:`\min(\max(y_{ij}, 0), c_{ij} t)` with
    :math:`c_{ij} = w_j / w_i`, so t minimises the convex piecewise quadratic
    :math:`(t - y_{ii})^2 + \sum_j \max(0, y_{ij} - c_{ij} t)^2`. Its breakpoints
    :math:`b_{ij} = \max(y_{ij}, 0) / c_{ij}` are sorted (descending); with the k
    largest active, the stationary point is
    :math:`t_k = (y_{ii} + \sum_{\le k} c y) / (1 + \sum_{\le k} c^2)` (prefix sums) and
    the answer is the first k with :math:`t_k \ge b_{(k+1)}`, clipped to [0, 1].
    One sort, two cumsums and one search over an (n x n) array: O(n^2 log n), no
    loop over rows.

    Parameters
    ----------
    Y : Tensor, shape (n, n)
    weights : Tensor, shape (n,), optional
        Positive column weights w (all ones when None).

    Returns
    -------
    Tensor, shape (n, n)

    References
    ----------
    N. Gillis and R. Luce, "A fast gradient method for nonnegative sparse regression
    with self-dictionary", IEEE Trans. Image Processing 27(1), 2018.
    """
    n = Y.shape[0]
    if Y.dim() != 2 or Y.shape[1] != n:
        raise ValueError(f"project_omega needs a square matrix, got shape {tuple(Y.shape)}")
    if n == 1:
        return Y.clamp(0, 1)  # only the diagonal constraint 0 <= x_11 <= 1
    if weights is None:
        w = torch.ones(n, device=Y.device, dtype=Y.dtype)
    else:
        w = weights.to(Y.dtype).clamp_min(torch.finfo(Y.dtype).tiny)
    w_row, w_col = w.unsqueeze(1), w.unsqueeze(0)
    # the n x n temporaries are few and updated in place: at this size every fresh
    # allocation costs page faults comparable to a pass over the data
    B = Y.clamp_min(0).mul_(w_row).div_(w_col)  # breakpoints b_ij = max(y_ij, 0) / c_ij
    B.diagonal().fill_(-torch.inf)  # the diagonal sorts last and acts as the sentinel
    Bs, order = torch.sort(B, dim=1, descending=True)
    C2 = w[order].div_(w_row).square_()  # c^2 in the sorted order
    del order
    S2 = torch.cumsum(C2[:, :-1], dim=1)
    S1 = torch.cumsum(C2[:, :-1].mul_(Bs[:, :-1]), dim=1)  # prefix sums of c y = c^2 b
    del C2
    d = torch.diagonal(Y).unsqueeze(1)
    T = S1.add_(d).div_(S2.add_(1))  # t_k for k = 1 .. n-1 largest breakpoints active
    del S2
    first = torch.cat([d >= Bs[:, :1], T >= Bs[:, 1:]], dim=1)  # t_0 = y_ii
    del Bs
    k = torch.argmax(first.to(torch.int8), dim=1, keepdim=True)
    t = torch.where(k == 0, d, torch.gather(T, 1, (k - 1).clamp_min(0))).clamp_(0, 1)
    del T
    P = torch.minimum(B, t, out=B).mul_(w_col).div_(w_row)  # min(y_ij^+, c_ij t_i) = c_ij min(b_ij, t_i)
    P.diagonal().copy_(t.squeeze(1))
    return P
