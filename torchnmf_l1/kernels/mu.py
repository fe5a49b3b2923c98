r"""Multiplicative-update ratios for the beta-divergence, dense or sparse X, single or batched.

For fixed W, the heuristic MU of H for :math:`D_\beta(X \mid WH)` is

.. math:: H \leftarrow H \circ \Big(\frac{W^T[(WH)^{\beta-2} \circ X]}{W^T (WH)^{\beta-1} + \lambda_1 + \lambda_2 H}\Big)^{\gamma(\beta)}

with :math:`\gamma(\beta) = 1/(2-\beta)` for :math:`\beta<1`, 1 for
:math:`1 \le \beta \le 2`, :math:`1/(\beta-1)` for :math:`\beta>2`, which makes the
objective non-increasing (Févotte and Idier, 2011). W is updated by the same kernel
on the transposed problem :math:`X^T \approx H^T W^T`.

WH is bounded below by ``eps * max(WH)`` per problem, not by an absolute epsilon, so that
the iterates of ``c X`` are ``sqrt(c)`` times those of X for any scale c. For sparse X the
numerator only needs WH on the support of X; the denominator is
:math:`W^T W H` for :math:`\beta = 2`, the column sums of W for :math:`\beta = 1`,
and for other :math:`\beta` is formed one block of columns at a time. Dense batches are
processed a few problems at a time (at most ``_BLOCK_ELEMENTS`` entries of WH at once).

References
----------
D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization", NIPS 2001.
C. Févotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
beta-divergence", Neural Computation 23(9), 2011.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .products import (
    Support, chunk_size, gram, is_sparse, per_entry, records_grad, relative_floor, wh_on_support, wt_x,
)

__all__ = ["mu_exponent", "beta_mu_ratio_terms", "mu_update_", "mu_ratio", "sparse_pattern_wt", "l21_column_weights"]

_BLOCK_ELEMENTS = 1 << 24
# Entries of WH per block of the MU terms of one large dense X (see _dense_terms).
_MU_BLOCK_ELEMENTS = 1 << 21


def mu_exponent(beta: float) -> float:
    """The exponent gamma(beta) that makes the MU of the beta-divergence monotone."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def sparse_pattern_wt(
    W: Tensor, X: Tensor, values: Tensor, X_t: Tensor | None = None, perm_t: Tensor | None = None
) -> Tensor:
    """``W^T S`` (r x n, or B x r x n) where S has the sparsity pattern of CSR X and entries ``values`` (CSR order)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        if X_t is not None and perm_t is not None:
            S_t = torch.sparse_csr_tensor(
                X_t.crow_indices(), X_t.col_indices(), values[perm_t], X_t.shape, device=X.device, check_invariants=False
            )
        else:
            S_t = torch.sparse_csr_tensor(
                X.crow_indices(), X.col_indices(), values, X.shape, device=X.device, check_invariants=False
            ).t().to_sparse_csr()
    if W.dim() == 2:
        return torch.sparse.mm(S_t, W.contiguous()).mT
    B, m, r = W.shape
    return torch.sparse.mm(S_t, W.reshape(B * m, r)).reshape(B, -1, r).mT


def _block_terms(X: Tensor, W: Tensor, H: Tensor, beta: float) -> tuple[Tensor, Tensor | None]:
    WH = W @ H
    floor = relative_floor(WH, dense_batch=WH.dim() == 3)
    Wt = W.mT
    if beta == 1.0:
        if records_grad(W, H, X):
            return Wt @ (X / WH.clamp_min(floor)), None
        return Wt @ torch.div(X, WH.clamp_min_(floor), out=WH), None  # WH's buffer reused: no second temporary
    WH = WH.clamp_min(floor)
    # one power per update: WH^(beta-1) = WH^(beta-2) WH
    power = WH.pow(-2.0) if beta == 0.0 else WH ** (beta - 2.0)
    return Wt @ (power * X), Wt @ (power * WH)


def _dense_terms(X: Tensor, W: Tensor, H: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """The MU terms for dense X. A large single X (more than ``2 _MU_BLOCK_ELEMENTS`` entries) is
    taken in blocks along its longer side, so that WH and the ratio live in the caches as
    blocks instead of in memory as m x n temporaries (200 x 1e6 float32, KL, 2 threads: 5.7 s
    per iteration whole, 1.2 s in blocks). Along the columns the blocks of the terms are
    concatenated, along the rows summed; the floor of WH is then relative to its block's largest
    entry (it binds only on entries under eps times that, and keeps the scale invariance)."""
    p, q = X.shape[-2:]
    if X.dim() == 3 or W.dim() == 3 or p * q <= 2 * _MU_BLOCK_ELEMENTS:
        numerator, denominator = _block_terms(X, W, H, beta)
    elif q >= p:
        step = max(1, _MU_BLOCK_ELEMENTS // p)
        parts = [_block_terms(X[:, s : s + step], W, H[:, s : s + step], beta) for s in range(0, q, step)]
        numerator = torch.cat([part[0] for part in parts], dim=-1)
        denominator = None if beta == 1.0 else torch.cat([part[1] for part in parts], dim=-1)
    else:
        step = max(1, _MU_BLOCK_ELEMENTS // q)
        numerator, denominator = None, None
        for s in range(0, p, step):
            num, den = _block_terms(X[s : s + step], W[s : s + step], H, beta)
            numerator = num if numerator is None else numerator + num
            if den is not None:
                denominator = den if denominator is None else denominator + den
    if beta == 1.0:
        denominator = W.sum(dim=-2).unsqueeze(-1).expand_as(H)
    return numerator, denominator


def beta_mu_ratio_terms(
    X: Tensor,
    W: Tensor,
    H: Tensor,
    beta: float,
    support: Support | None = None,
    X_t: Tensor | None = None,
    perm_t: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Numerator and denominator (both r x n, or B x r x n) of the MU of H for the beta-divergence.

    Parameters
    ----------
    X : Tensor
        Dense (m, n), (B, m, n) or shared by a batch of factors; or sparse CSR (the
        block-diagonal matrix of a batch) with its ``support`` in CSR order.
    W : Tensor, shape (m, r) or (B, m, r)
    H : Tensor, shape (r, n) or (B, r, n)
    beta : float
    X_t, perm_t : Tensor, optional
        CSR copy of X^T and the permutation from X's CSR order to X^T's (see
        :class:`torchnmf_l1.data.Data`), for the fast ``W^T S`` products.
    """
    if beta == 2.0:
        return wt_x(W, X, X_t), gram(W) @ H
    if not is_sparse(X):
        if W.dim() == 2:
            return _dense_terms(X, W, H, beta)
        B, m, n = W.shape[0], W.shape[1], H.shape[-1]
        step = chunk_size(B, m * n, _BLOCK_ELEMENTS)
        if step >= B:
            return _dense_terms(X, W, H, beta)
        parts = [
            _dense_terms(X if X.dim() == 2 else X[s : s + step], W[s : s + step], H[s : s + step], beta)
            for s in range(0, B, step)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    wh = wh_on_support(W, H, support.rows, support.cols, support.crow)
    floor = relative_floor(wh, support.offsets)
    wh = wh.clamp_min(per_entry(floor, support.offsets, wh.numel()))
    ratio_values = support.values / wh if beta == 1.0 else wh ** (beta - 2.0) * support.values
    numerator = sparse_pattern_wt(W, X, ratio_values, X_t, perm_t)
    if beta == 1.0:
        return numerator, W.sum(dim=-2).unsqueeze(-1).expand_as(H)
    m, n = W.shape[-2], H.shape[-1]
    block = chunk_size(n, m * (W.shape[0] if W.dim() == 3 else 1), _BLOCK_ELEMENTS)
    Wt = W.mT
    block_floor = floor.view(-1, 1, 1) if floor.dim() else floor
    denominator = torch.cat(
        [Wt @ (W @ H[..., s : s + block]).clamp_min(block_floor) ** (beta - 1.0) for s in range(0, n, block)], dim=-1
    )
    return numerator, denominator


def mu_update_(
    H: Tensor,
    numerator: Tensor,
    denominator: Tensor,
    gamma: float = 1.0,
    l1: float = 0.0,
    l2: float = 0.0,
    active: Tensor | None = None,
) -> Tensor:
    """``H *= (numerator / (denominator + l1 + l2 H))^gamma`` in place.

    The denominator is bounded below by ``eps * max(denominator)`` per problem
    (:func:`relative_floor`), a floor that scales with the data. ``active`` (B,) bool, for
    a batch: problems where it is False keep their H.
    """
    return H.mul_(mu_ratio(H, numerator, denominator, gamma, l1, l2, active))


def mu_ratio(
    H: Tensor,
    numerator: Tensor,
    denominator: Tensor,
    gamma: float = 1.0,
    l1: float = 0.0,
    l2: float = 0.0,
    active: Tensor | None = None,
) -> Tensor:
    """The factor ``(numerator / (denominator + l1 + l2 H))^gamma`` of the MU of H (out of place,
    differentiable: :func:`mu_update_` applies it in place, the NMF layer as ``H * ratio``)."""
    denominator = denominator + l1 if l1 else denominator
    if l2:
        denominator = denominator + l2 * H
    ratio = numerator.clamp_min(0) / denominator.clamp_min(relative_floor(denominator, dense_batch=denominator.dim() == 3))
    if gamma != 1.0:
        ratio = ratio**gamma
    if active is not None:
        ratio = torch.where(active.view(-1, 1, 1), ratio, 1.0)
    return ratio


def l21_column_weights(residual_norms: Tensor) -> Tensor:
    r"""The weights :math:`d_j = 1 / \|X_{:j} - (WH)_{:j}\|_2` of the MU for the L2,1 loss
    (Kong, Ding and Huang, 2011), each norm bounded below by ``eps * max`` of its problem's
    (a column fitted exactly gets a large, finite weight): (n,) or (B, n) -> the same shape.

    The MU are then those of a column-weighted Frobenius loss with D = diag(d):
    :math:`W \leftarrow W \circ (X D H^T) / (W H D H^T)`, :math:`H \leftarrow H \circ (W^T X D) / (W^T W H D)`.
    """
    top = residual_norms.amax(dim=-1, keepdim=True)
    floor = (torch.finfo(residual_norms.dtype).eps * top).clamp_min(torch.finfo(residual_norms.dtype).tiny)
    return residual_norms.clamp_min(floor).reciprocal()
