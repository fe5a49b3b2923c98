r"""Loss functions of X (m x n) against its reconstruction WH, for dense and sparse X.

All losses return a 0-dim tensor on X's device. For a sparse X, pass its support
(``rows, cols`` from :func:`~torchnmf_l1.kernels.support_indices` and ``values``
from :func:`~torchnmf_l1.kernels.sparse_values`) to avoid recomputing it; WH is then
only evaluated on the support, and sums of WH over the zeros of X are obtained
from column and row sums:

.. math::  \sum_{ij} (WH)_{ij} = \mathbf{1}^T W H \mathbf{1},\qquad
           \sum_{ij} (WH)_{ij}^2 = \langle W^T W, H H^T \rangle .

References
----------
C. Févotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
beta-divergence", Neural Computation 23(9), 2011.
N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .products import gram, is_sparse, sparse_values, support_indices, wh_on_support

__all__ = [
    "frobenius_loss",
    "kl_divergence",
    "is_divergence",
    "beta_divergence",
    "l1_loss",
    "weighted_l1_loss",
    "relative_error",
]

# Columns of WH materialised at once for the general beta-divergence on sparse X.
_BLOCK_ELEMENTS = 1 << 24


def _support(X: Tensor, support):
    if support is not None:
        return support
    rows, cols = support_indices(X)
    return rows, cols, sparse_values(X)


def _sum_wh(W: Tensor, H: Tensor) -> Tensor:
    return W.sum(dim=0) @ H.sum(dim=1)


def frobenius_loss(X: Tensor, W: Tensor, H: Tensor, support=None) -> Tensor:
    r"""Half the squared Frobenius norm :math:`\tfrac12 \|X - WH\|_F^2`.

    For sparse X the residual is summed exactly on the support and the zeros add
    :math:`\tfrac12(\langle W^TW, HH^T\rangle - \sum_{\Omega} (WH)^2)`.
    """
    if not is_sparse(X):
        return 0.5 * torch.sum((X - W @ H) ** 2)
    rows, cols, values = _support(X, support)
    wh = wh_on_support(W, H, rows, cols)
    on_support = torch.sum((values - wh) ** 2)
    off_support = torch.sum(gram(W) * gram(H, transpose=True)) - torch.sum(wh * wh)
    return 0.5 * (on_support + off_support.clamp_min(0))


def _xlogx_over_y(x: Tensor, y: Tensor) -> Tensor:
    # x log(x / y) with the convention 0 log 0 = 0.
    return torch.where(x > 0, x * (torch.log(x.clamp_min(torch.finfo(x.dtype).tiny)) - torch.log(y)), 0.0)


def kl_divergence(X: Tensor, W: Tensor, H: Tensor, support=None) -> Tensor:
    r"""Generalised Kullback-Leibler divergence
    :math:`\sum_{ij} X_{ij}\log\frac{X_{ij}}{(WH)_{ij}} - X_{ij} + (WH)_{ij}` (beta = 1)."""
    eps = torch.finfo(W.dtype).eps
    if not is_sparse(X):
        WH = (W @ H).clamp_min(eps)
        return torch.sum(_xlogx_over_y(X, WH) - X + WH)
    rows, cols, values = _support(X, support)
    wh = wh_on_support(W, H, rows, cols).clamp_min(eps)
    return torch.sum(_xlogx_over_y(values, wh) - values) + _sum_wh(W, H)


def is_divergence(X: Tensor, W: Tensor, H: Tensor, support=None) -> Tensor:
    r"""Itakura-Saito divergence :math:`\sum_{ij} \frac{X_{ij}}{(WH)_{ij}} - \log\frac{X_{ij}}{(WH)_{ij}} - 1`
    (beta = 0). Infinite where X has zeros; callers reject such data."""
    eps = torch.finfo(W.dtype).eps
    if is_sparse(X):
        rows, cols, values = _support(X, support)
        if values.numel() < X.shape[0] * X.shape[1]:
            return values.new_tensor(math.inf)
        wh = wh_on_support(W, H, rows, cols).clamp_min(eps)
        ratio = values / wh
        return torch.sum(ratio - torch.log(ratio) - 1)
    ratio = X / (W @ H).clamp_min(eps)
    return torch.sum(ratio - torch.log(ratio) - 1)


def beta_divergence(X: Tensor, W: Tensor, H: Tensor, beta: float, support=None) -> Tensor:
    r"""Beta-divergence :math:`D_\beta(X \mid WH)` summed over all entries.

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
    eps = torch.finfo(W.dtype).eps
    scale = 1.0 / (beta * (beta - 1.0))
    if not is_sparse(X):
        WH = (W @ H).clamp_min(eps)
        return scale * torch.sum(X**beta + (beta - 1.0) * WH**beta - beta * X * WH ** (beta - 1.0))
    rows, cols, values = _support(X, support)
    if beta < 0 and values.numel() < X.shape[0] * X.shape[1]:
        return values.new_tensor(math.inf)
    wh = wh_on_support(W, H, rows, cols).clamp_min(eps)
    on_support = torch.sum(values**beta - beta * values * wh ** (beta - 1.0))
    m, n = X.shape
    block = max(1, _BLOCK_ELEMENTS // max(m, 1))
    total_wh_beta = W.new_zeros(())
    for start in range(0, n, block):
        total_wh_beta = total_wh_beta + torch.sum((W @ H[:, start : start + block]).clamp_min(eps) ** beta)
    return scale * (on_support + (beta - 1.0) * total_wh_beta)


def weighted_l1_loss(X: Tensor, W: Tensor, H: Tensor, zero_weight: float = 1.0, support=None) -> Tensor:
    r"""Weighted component-wise L1 loss

    .. math:: \sum_{(i,j)\in\Omega} |X_{ij} - (WH)_{ij}| + \lambda \sum_{(i,j)\notin\Omega} (WH)_{ij}

    where :math:`\Omega` is the set of nonzero entries of X and :math:`\lambda`
    is ``zero_weight`` (1 gives the plain L1 loss, since WH >= 0).
    """
    if not is_sparse(X):
        WH = W @ H
        nonzero = X != 0
        return torch.sum(torch.where(nonzero, (X - WH).abs(), zero_weight * WH))
    rows, cols, values = _support(X, support)
    wh = wh_on_support(W, H, rows, cols)
    stored_nonzero = values != 0
    on_support = torch.sum(torch.where(stored_nonzero, (values - wh).abs(), zero_weight * wh))
    return on_support + zero_weight * (_sum_wh(W, H) - wh.sum())


def l1_loss(X: Tensor, W: Tensor, H: Tensor, support=None) -> Tensor:
    r"""Component-wise L1 loss :math:`\sum_{ij} |X_{ij} - (WH)_{ij}|` (for W, H >= 0)."""
    return weighted_l1_loss(X, W, H, 1.0, support)


def relative_error(X: Tensor, W: Tensor, H: Tensor, support=None) -> Tensor:
    r"""Relative Frobenius error :math:`\|X - WH\|_F / \|X\|_F`."""
    values = _support(X, support)[2] if is_sparse(X) else X
    return torch.sqrt(2.0 * frobenius_loss(X, W, H, support)) / torch.linalg.vector_norm(values)
