r"""Multiplicative-update ratios for the beta-divergence, dense or sparse X.

For fixed W, the heuristic MU of H for :math:`D_\beta(X \mid WH)` is

.. math:: H \leftarrow H \circ \Big(\frac{W^T[(WH)^{\beta-2} \circ X]}{W^T (WH)^{\beta-1} + \lambda_1 + \lambda_2 H}\Big)^{\gamma(\beta)}

with :math:`\gamma(\beta) = 1/(2-\beta)` for :math:`\beta<1`, 1 for
:math:`1 \le \beta \le 2`, :math:`1/(\beta-1)` for :math:`\beta>2`, which makes the
objective non-increasing (Févotte and Idier, 2011). W is updated by the same kernel
on the transposed problem :math:`X^T \approx H^T W^T`.

For sparse X the numerator only needs WH on the support of X; the denominator is
:math:`W^T W H` for :math:`\beta = 2`, the column sums of W for :math:`\beta = 1`,
and for other :math:`\beta` is formed one block of columns at a time.

References
----------
D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization", NIPS 2001.
C. Févotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
beta-divergence", Neural Computation 23(9), 2011.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .products import gram, is_sparse, wh_on_support, wt_x

__all__ = ["mu_exponent", "beta_mu_ratio_terms", "mu_update_", "sparse_pattern_wt"]

_BLOCK_ELEMENTS = 1 << 24


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
    """``W^T S`` (r x n) where S has the sparsity pattern of CSR X and entries ``values`` (CSR order)."""
    if X_t is not None and perm_t is not None:
        S_t = torch.sparse_csr_tensor(X_t.crow_indices(), X_t.col_indices(), values[perm_t], X_t.shape, check_invariants=False)
    else:
        S_t = torch.sparse_csr_tensor(X.crow_indices(), X.col_indices(), values, X.shape, check_invariants=False).t().to_sparse_csr()
    return torch.sparse.mm(S_t, W.contiguous()).transpose(0, 1)


def beta_mu_ratio_terms(
    X: Tensor,
    W: Tensor,
    H: Tensor,
    beta: float,
    support=None,
    X_t: Tensor | None = None,
    perm_t: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Numerator and denominator (both r x n) of the MU of H for the beta-divergence.

    Parameters
    ----------
    X : Tensor, shape (m, n)
        Dense, or sparse CSR with ``support = (rows, cols, values)`` in CSR order.
    W : Tensor, shape (m, r)
    H : Tensor, shape (r, n)
    beta : float
    X_t, perm_t : Tensor, optional
        CSR copy of X^T and the permutation from X's CSR order to X^T's (see
        :class:`torchnmf_l1.data.Data`), for the fast ``W^T S`` products.
    """
    eps = torch.finfo(W.dtype).eps
    if beta == 2.0:
        return wt_x(W, X, X_t), gram(W) @ H
    if not is_sparse(X):
        WH = (W @ H).clamp_min(eps)
        if beta == 1.0:
            return W.transpose(0, 1) @ (X / WH), W.sum(dim=0)[:, None].expand_as(H)
        return W.transpose(0, 1) @ (WH ** (beta - 2.0) * X), W.transpose(0, 1) @ WH ** (beta - 1.0)
    rows, cols, values = support
    wh = wh_on_support(W, H, rows, cols).clamp_min(eps)
    ratio_values = values / wh if beta == 1.0 else wh ** (beta - 2.0) * values
    numerator = sparse_pattern_wt(W, X, ratio_values, X_t, perm_t)
    if beta == 1.0:
        return numerator, W.sum(dim=0)[:, None].expand_as(H)
    m, n = X.shape
    block = max(1, _BLOCK_ELEMENTS // max(m, 1))
    Wt = W.transpose(0, 1)
    denominator = torch.cat(
        [Wt @ (W @ H[:, s : s + block]).clamp_min(eps) ** (beta - 1.0) for s in range(0, n, block)], dim=1
    )
    return numerator, denominator


def mu_update_(
    H: Tensor,
    numerator: Tensor,
    denominator: Tensor,
    gamma: float = 1.0,
    l1: float = 0.0,
    l2: float = 0.0,
) -> Tensor:
    """``H *= (numerator / (denominator + l1 + l2 H))^gamma`` in place, with a dtype epsilon."""
    eps = torch.finfo(H.dtype).eps
    denominator = denominator + l1 if l1 else denominator
    if l2:
        denominator = denominator + l2 * H
    ratio = numerator.clamp_min(0) / denominator.clamp_min(eps)
    if gamma != 1.0:
        ratio = ratio**gamma
    return H.mul_(ratio)
