r"""Loss functions of X against its reconstruction WH, for dense and sparse X, single or batched.

Every loss returns a 0-dim tensor for one problem, or a (B,) tensor with the loss of each
problem of a batch (layouts in :mod:`torchnmf_l1.kernels.products`), on X's device. For a
sparse X, pass its :class:`~torchnmf_l1.kernels.products.Support` to avoid recomputing it;
WH is then only evaluated on the support, and sums of WH over the zeros of X are obtained
from column and row sums:

.. math::  \sum_{ij} (WH)_{ij} = \mathbf{1}^T W H \mathbf{1},\qquad
           \sum_{ij} (WH)_{ij}^2 = \langle W^T W, H H^T \rangle .

Dense batches are evaluated a few problems at a time, so that at most about
``_BLOCK_ELEMENTS`` entries of WH exist at once (``B m n`` never, for replicates of a
shared X).

References
----------
C. Févotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
beta-divergence", Neural Computation 23(9), 2011.
N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .products import (
    Support, chunk_size, gram, is_sparse, per_entry, problem_norm_sq, problem_sums, relative_floor, sparse_values,
    support_indices, wh_on_support,
)

__all__ = [
    "frobenius_loss",
    "frobenius_from_products",
    "kl_divergence",
    "is_divergence",
    "beta_divergence",
    "l1_loss",
    "weighted_l1_loss",
    "l21_loss",
    "column_residual_norms",
    "relative_error",
    "dense_in_chunks",
]

# Entries of WH materialised at once by the dense losses of a batch, and by the general
# beta-divergence on sparse X.
_BLOCK_ELEMENTS = 1 << 24


def _support(X: Tensor, support) -> Support:
    if support is not None:
        return support
    rows, cols = support_indices(X)
    crow = X.crow_indices().to(torch.int64) if X.layout == torch.sparse_csr else None
    return Support(rows, cols, sparse_values(X), crow=crow)


def _floored(wh: Tensor, offsets: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """WH (dense (m, n) / (B, m, n), or on a support) bounded below by ``eps * max(WH)`` per
    problem, and that floor: a floor that scales with the data (see :func:`relative_floor`)."""
    if offsets is None and wh.dim() != 1:
        floor = relative_floor(wh, dense_batch=wh.dim() == 3)
        return wh.clamp_min(floor), floor
    floor = relative_floor(wh, offsets)
    return wh.clamp_min(per_entry(floor, offsets, wh.numel())), floor


def _sum_wh(W: Tensor, H: Tensor) -> Tensor:
    """sum(WH) per problem: (W^T 1) . (H 1)."""
    return (W.sum(dim=-2) * H.sum(dim=-1)).sum(dim=-1)


def dense_in_chunks(fn: Callable[[Tensor, Tensor, Tensor], Tensor], X: Tensor, W: Tensor, H: Tensor) -> Tensor:
    """``fn(X_c, W_c, H_c)`` over chunks of a batch, concatenated: (B,); ``fn(X, W, H)`` for one problem.

    ``fn`` reduces each problem's m x n entries to one number; X is (B, m, n) or an
    (m, n) shared by all problems. At most ``_BLOCK_ELEMENTS`` entries per chunk.
    """
    if W.dim() == 2:
        return fn(X, W, H)
    B, m, n = W.shape[0], W.shape[1], H.shape[-1]
    step = chunk_size(B, m * n, _BLOCK_ELEMENTS)
    if step >= B:
        return fn(X, W, H)
    parts = [fn(X if X.dim() == 2 else X[s : s + step], W[s : s + step], H[s : s + step]) for s in range(0, B, step)]
    return torch.cat(parts)


def _residual(X: Tensor, W: Tensor, H: Tensor) -> Tensor:
    """X - WH in one fused product."""
    if W.dim() == 2:
        return torch.addmm(X, W, H, alpha=-1)
    return torch.baddbmm(X.expand(W.shape[0], -1, -1) if X.dim() == 2 else X, W, H, alpha=-1)


def frobenius_loss(X: Tensor, W: Tensor, H: Tensor, support: Support | None = None) -> Tensor:
    r"""Half the squared Frobenius norm :math:`\tfrac12 \|X - WH\|_F^2` (per problem).

    For sparse X the residual is summed exactly on the support and the zeros add
    :math:`\tfrac12(\langle W^TW, HH^T\rangle - \sum_{\Omega} (WH)^2)`.
    """
    if not is_sparse(X):
        return dense_in_chunks(
            lambda x, w, h: 0.5 * torch.linalg.vector_norm(_residual(x, w, h), dim=(-2, -1)).square(), X, W, H
        )
    s = _support(X, support)
    wh = wh_on_support(W, H, s.rows, s.cols, s.crow)
    on_support = problem_sums((s.values - wh).square(), s.offsets)
    off_support = (gram(W) * gram(H, transpose=True)).sum(dim=(-2, -1)) - problem_sums(wh.square(), s.offsets)
    return 0.5 * (on_support + off_support.clamp_min(0))


def frobenius_from_products(norm_sq: Tensor, XF: Tensor, F: Tensor, G: Tensor, F_gram: Tensor) -> Tensor:
    r"""Half the squared error :math:`\tfrac12 \|X - WH\|_F^2` from the products an update already has.

    .. math:: \tfrac12\big(\|X\|_F^2 - 2\langle W^T X, H\rangle + \langle W^T W, H H^T\rangle\big)

    ``F`` is one factor stored as rows (H, (r, n), or ``W^T``, (r, m)), ``XF`` the product of
    X with the other factor in the same layout (``W^T X``, or ``H X^T``), ``G`` the other
    factor's Gram matrix and ``F_gram`` this one's ((r, r) each); a leading batch dimension
    is allowed. ``norm_sq`` is :math:`\|X\|_F^2` per problem. O(r (m + r)) per problem
    instead of O(mnr); clamped at 0 (round-off near an exact fit).
    """
    cross = (XF * F).sum(dim=(-2, -1))
    return 0.5 * (norm_sq - 2 * cross + (G * F_gram).sum(dim=(-2, -1))).clamp_min(0)


def _xlogx_over_y(x: Tensor, y: Tensor) -> Tensor:
    # x log(x / y) with the convention 0 log 0 = 0.
    return torch.where(x > 0, x * (torch.log(x.clamp_min(torch.finfo(x.dtype).tiny)) - torch.log(y)), 0.0)


def kl_divergence(X: Tensor, W: Tensor, H: Tensor, support: Support | None = None) -> Tensor:
    r"""Generalised Kullback-Leibler divergence
    :math:`\sum_{ij} X_{ij}\log\frac{X_{ij}}{(WH)_{ij}} - X_{ij} + (WH)_{ij}` (beta = 1)."""
    if not is_sparse(X):

        def kl(x, w, h):
            WH, _ = _floored(w @ h)
            return (_xlogx_over_y(x, WH) - x + WH).sum(dim=(-2, -1))

        return dense_in_chunks(kl, X, W, H)
    s = _support(X, support)
    wh, _ = _floored(wh_on_support(W, H, s.rows, s.cols, s.crow), s.offsets)
    return problem_sums(_xlogx_over_y(s.values, wh) - s.values, s.offsets) + _sum_wh(W, H)


def _entries(X: Tensor, W: Tensor, offsets) -> int:
    """m n: the number of entries of each problem."""
    if offsets is None:
        return X.shape[0] * X.shape[1]
    B = offsets.numel() - 1
    return (X.shape[0] // B) * (X.shape[1] // B)


def _dense_support(s: Support, X: Tensor, W: Tensor) -> Tensor:
    """True per problem where the support covers every entry (no zeros)."""
    count = problem_sums(torch.ones_like(s.values), s.offsets)
    return count >= _entries(X, W, s.offsets)


def is_divergence(X: Tensor, W: Tensor, H: Tensor, support: Support | None = None) -> Tensor:
    r"""Itakura-Saito divergence :math:`\sum_{ij} \frac{X_{ij}}{(WH)_{ij}} - \log\frac{X_{ij}}{(WH)_{ij}} - 1`
    (beta = 0). Infinite where X has zeros; callers reject such data."""
    if is_sparse(X):
        s = _support(X, support)
        wh, _ = _floored(wh_on_support(W, H, s.rows, s.cols, s.crow), s.offsets)
        ratio = s.values / wh
        value = problem_sums(ratio - torch.log(ratio) - 1, s.offsets)
        return torch.where(_dense_support(s, X, W), value, math.inf)

    def is_(x, w, h):
        ratio = x / _floored(w @ h)[0]
        return (ratio - torch.log(ratio) - 1).sum(dim=(-2, -1))

    return dense_in_chunks(is_, X, W, H)


def beta_divergence(X: Tensor, W: Tensor, H: Tensor, beta: float, support: Support | None = None) -> Tensor:
    r"""Beta-divergence :math:`D_\beta(X \mid WH)` summed over all entries (per problem).

    .. math:: d_\beta(x \mid y) = \frac{x^\beta + (\beta-1) y^\beta - \beta x y^{\beta-1}}{\beta(\beta-1)}

    with the limits :math:`\beta = 1` (KL), :math:`\beta = 0` (IS), and
    :math:`\beta = 2` giving :math:`\tfrac12 (x-y)^2`. For sparse X and beta not in
    {0, 1, 2}, WH is formed one block of columns at a time (never the whole m x n).
    """
    beta = float(beta)
    if beta == 2.0:
        return frobenius_loss(X, W, H, support)
    if beta == 1.0:
        return kl_divergence(X, W, H, support)
    if beta == 0.0:
        return is_divergence(X, W, H, support)
    scale = 1.0 / (beta * (beta - 1.0))
    if not is_sparse(X):

        def beta_(x, w, h):
            WH, _ = _floored(w @ h)
            return (x**beta + (beta - 1.0) * WH**beta - beta * x * WH ** (beta - 1.0)).sum(dim=(-2, -1))

        return scale * dense_in_chunks(beta_, X, W, H)
    s = _support(X, support)
    wh, floor = _floored(wh_on_support(W, H, s.rows, s.cols, s.crow), s.offsets)
    on_support = problem_sums(s.values**beta - beta * s.values * wh ** (beta - 1.0), s.offsets)
    total_wh_beta = _sum_dense_power(W, H, beta, floor.view(-1, 1, 1) if floor.dim() else floor)
    value = scale * (on_support + (beta - 1.0) * total_wh_beta)
    if beta < 0:
        value = torch.where(_dense_support(s, X, W), value, math.inf)
    return value


def _sum_dense_power(W: Tensor, H: Tensor, power: float, floor: Tensor) -> Tensor:
    """sum over all entries of (WH)^power per problem, one block of columns at a time."""
    m, n = W.shape[-2], H.shape[-1]
    B = W.shape[0] if W.dim() == 3 else 1
    block = chunk_size(n, m * B, _BLOCK_ELEMENTS)
    total = W.new_zeros(W.shape[:-2])
    for start in range(0, n, block):
        total = total + ((W @ H[..., start : start + block]).clamp_min(floor) ** power).sum(dim=(-2, -1))
    return total


def weighted_l1_loss(X: Tensor, W: Tensor, H: Tensor, zero_weight: float = 1.0, support: Support | None = None) -> Tensor:
    r"""Weighted component-wise L1 loss (per problem)

    .. math:: \sum_{(i,j)\in\Omega} |X_{ij} - (WH)_{ij}| + \lambda \sum_{(i,j)\notin\Omega} (WH)_{ij}

    where :math:`\Omega` is the set of nonzero entries of X and :math:`\lambda`
    is ``zero_weight`` (1 gives the plain L1 loss, since WH >= 0).
    """
    if not is_sparse(X):

        def wl1(x, w, h):
            WH = w @ h
            return torch.where(x != 0, (x - WH).abs(), zero_weight * WH).sum(dim=(-2, -1))

        return dense_in_chunks(wl1, X, W, H)
    s = _support(X, support)
    wh = wh_on_support(W, H, s.rows, s.cols, s.crow)
    on_support = problem_sums(torch.where(s.values != 0, (s.values - wh).abs(), zero_weight * wh), s.offsets)
    return on_support + zero_weight * (_sum_wh(W, H) - problem_sums(wh, s.offsets))


def l1_loss(X: Tensor, W: Tensor, H: Tensor, support: Support | None = None) -> Tensor:
    r"""Component-wise L1 loss :math:`\sum_{ij} |X_{ij} - (WH)_{ij}|` (for W, H >= 0)."""
    return weighted_l1_loss(X, W, H, 1.0, support)


def column_residual_norms(X: Tensor, W: Tensor, H: Tensor, support: Support | None = None) -> Tensor:
    r""":math:`\|X_{:j} - (WH)_{:j}\|_2` for every column j: (n,), or (B, n) for a batch.

    For sparse X from the support and :math:`\|(WH)_{:j}\|^2 = H_{:j}^T (W^T W) H_{:j}`, with
    no dense m x n tensor; a dense X in blocks of problems as the other losses.
    """
    if not is_sparse(X):
        return dense_in_chunks(lambda x, w, h: torch.linalg.vector_norm(x - w @ h, dim=-2), X, W, H)
    s = _support(X, support)
    wh = wh_on_support(W, H, s.rows, s.cols, s.crow)
    n = H.shape[-1]
    B = W.shape[0] if W.dim() == 3 else 1
    on_support = (s.values - wh).square() - wh.square()  # (x - wh)^2 replaces the wh^2 of the full product
    sums = on_support.new_zeros(B * n).index_add_(0, s.cols, on_support)
    model = ((gram(W) @ H) * H).sum(dim=-2)  # ||(WH)_{:j}||^2: (n,) or (B, n)
    return (sums.reshape(model.shape) + model).clamp_min(0).sqrt()


def l21_loss(X: Tensor, W: Tensor, H: Tensor, support: Support | None = None) -> Tensor:
    r"""L2,1 loss :math:`\sum_j \|X_{:j} - (WH)_{:j}\|_2`, robust to outlying columns (per problem).

    References
    ----------
    D. Kong, C. Ding and H. Huang, "Robust nonnegative matrix factorization using
    L21-norm", CIKM 2011.
    """
    return column_residual_norms(X, W, H, support).sum(dim=-1)


def relative_error(X: Tensor, W: Tensor, H: Tensor, support: Support | None = None) -> Tensor:
    r"""Relative Frobenius error :math:`\|X - WH\|_F / \|X\|_F` (per problem)."""
    offsets = None
    if is_sparse(X):
        support = _support(X, support)  # built once, for the loss and the norm
        offsets = support.offsets
    return torch.sqrt(2.0 * frobenius_loss(X, W, H, support) / problem_norm_sq(X, offsets))
