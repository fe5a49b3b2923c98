r"""Entry weights and missing data: the weighted objective and its updates, dense or sparse.

.. math:: \min_{W, H \ge 0} \sum_{(i,j) \in \Omega} w_{ij}\, d(X_{ij} \mid (WH)_{ij}) + \text{penalties}

with :math:`\Omega` the observed entries (a mask, NaN entries of X, or the stored entries
of a sparse weight matrix) and :math:`w_{ij} > 0` their weights. Two layouts:

* **dense**: X (m, n) with the missing entries filled with 0, weights (m, n) with 0 where
  missing; an iteration costs O(mnr) (as an unweighted one) whatever the share observed;
* **on a support**: the observed entries only, as ``values[k] = X[rows[k], cols[k]]``
  (zeros kept: an observed zero is data) with ``weights[k]``, in CSR order; an iteration
  costs O(|Omega| r) and no m x n tensor exists.

The updates:

* :func:`weighted_hals_update_`: HALS with exact per-entry weights (Ho's thesis, 2008;
  Gillis and Glineur's WLRA): row k of H becomes the exact minimiser of the weighted
  objective in that row, the others fixed,
  :math:`h_{kj} = \max\big(0, \frac{\sum_i w_{ij} W_{ik} (E_{ij} + W_{ik} h_{kj}) - \lambda_1}{\sum_i w_{ij} W_{ik}^2 + \lambda_2}\big)`,
  E = X - WH updated after each row; an entry with no weight through :math:`W_{:k}` keeps
  its value (a column with no observed entry keeps its start).
* :func:`weighted_mu_ratio_terms`: the weighted MU of the beta-divergence,
  :math:`H \leftarrow H \circ \big(\frac{W^T[w \circ X \circ (WH)^{\beta-2}]}{W^T[w \circ (WH)^{\beta-1}]}\big)^{\gamma(\beta)}`,
  monotone with the same exponent as the unweighted MU (the auxiliary function is a sum
  over entries; a weight scales its term).

References
----------
N.-D. Ho, *Nonnegative matrix factorization algorithms and applications*, PhD thesis,
UCLouvain, 2008 (weighted HALS, ch. 6).
N. Gillis and F. Glineur, "Low-rank matrix approximation with weights or missing data is
NP-hard", SIAM J. Matrix Anal. Appl. 32(4), 2011.
C. Févotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
beta-divergence", Neural Computation 23(9), 2011.
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import Tensor

from .mu import sparse_pattern_wt
from .products import Support, chunk_size, relative_floor, wh_on_support

__all__ = [
    "entry_divergence",
    "weighted_loss",
    "weighted_relative_error",
    "weighted_residual",
    "weighted_scale",
    "weighted_hals_update_",
    "weighted_mu_ratio_terms",
    "weighted_row_statistics",
    "row_gram_nnls_sweep_",
    "problem_chunks",
]

# Entries of the (rows x r x block) temporary of weighted_row_statistics materialised at once.
_STATISTICS_ELEMENTS = 1 << 24
# Entries of WH (or of the residual) of a dense batch (replicates) materialised at once: a batch
# of B problems is processed a few problems at a time, never B m n entries together.
_BLOCK_ELEMENTS = 1 << 24


def problem_chunks(batch: int, m: int, n: int) -> list[slice]:
    """Slices of a batch of ``batch`` m x n problems, each at most ``_BLOCK_ELEMENTS`` entries."""
    step = chunk_size(batch, m * n, _BLOCK_ELEMENTS)
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


def _chunked(fn):
    """Apply ``fn(X, W, H, weights, ...)`` to a dense batch a few problems at a time, concatenated."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        W, H, X = given["W"], given["H"], given["X"]
        if given.get("support") is not None or W.dim() == 2:
            return fn(*bound.args, **bound.kwargs)
        parts = []
        for chunk in problem_chunks(W.shape[0], W.shape[-2], H.shape[-1]):
            part = dict(given, W=W[chunk], H=H[chunk], X=X if X.dim() == 2 else X[chunk])
            parts.append(fn(**part))
        if isinstance(parts[0], tuple):
            return tuple(torch.cat([p[i] for p in parts]) for i in range(len(parts[0])))
        return torch.cat(parts)

    return wrapper


def entry_divergence(x: Tensor, y: Tensor, beta: float | None) -> Tensor:
    r"""Entry-wise beta-divergence :math:`d_\beta(x \mid y)` (y > 0): beta = 2 gives
    :math:`\tfrac12 (x - y)^2`, 1 the generalised KL, 0 Itakura-Saito; None gives :math:`|x - y|`."""
    if beta is None:
        return (x - y).abs()
    if beta == 2.0:
        return 0.5 * (x - y).square()
    if beta == 1.0:
        logx = torch.log(x.clamp_min(torch.finfo(x.dtype).tiny))
        return torch.where(x > 0, x * (logx - torch.log(y)), 0.0) - x + y
    if beta == 0.0:
        ratio = x / y
        return ratio - torch.log(ratio) - 1
    return (x**beta + (beta - 1.0) * y**beta - beta * x * y ** (beta - 1.0)) / (beta * (beta - 1.0))


def _reconstruction(X: Tensor, W: Tensor, H: Tensor, support: Support | None) -> tuple[Tensor, Tensor]:
    """(x, WH) on the observed layout: dense X and WH, or the support's values and WH there."""
    if support is None:
        return X, W @ H
    return support.values, wh_on_support(W, H, support.rows, support.cols, support.crow)


def _floored(wh: Tensor, dense: bool) -> Tensor:
    floor = relative_floor(wh, dense_batch=dense and wh.dim() == 3)
    return wh.clamp_min(floor)


def _sum(values: Tensor, dense: bool) -> Tensor:
    return values.sum(dim=(-2, -1)) if dense else values.sum()


@_chunked
def weighted_loss(X: Tensor, W: Tensor, H: Tensor, weights: Tensor, beta: float | None, support: Support | None = None) -> Tensor:
    r""":math:`\sum_{ij} w_{ij}\, d_\beta(X_{ij} \mid (WH)_{ij})` (0-dim, or (B,) for dense factors of a
    batch); ``beta=None``: the weighted L1 loss :math:`\sum_{ij} w_{ij} |X_{ij} - (WH)_{ij}|`.

    Parameters
    ----------
    X : Tensor
        Dense (m, n) with anything finite where the weight is 0; ignored when ``support`` is given.
    weights : Tensor
        Dense (m, n), or the weights of the support's entries (|Omega|,).
    support : Support, optional
        The observed entries (``values`` = X there).
    """
    dense = support is None
    x, wh = _reconstruction(X, W, H, support)
    if beta is not None and beta != 2.0:
        wh = _floored(wh, dense)
    terms = torch.where(weights > 0, weights * entry_divergence(x, wh, beta), 0.0)
    return _sum(terms, dense)


@_chunked
def weighted_relative_error(X: Tensor, W: Tensor, H: Tensor, weights: Tensor, support: Support | None = None) -> Tensor:
    r""":math:`\sqrt{\sum w (X - WH)^2 / \sum w X^2}` over the observed entries."""
    dense = support is None
    x, wh = _reconstruction(X, W, H, support)
    norm_sq = _sum(weights * x.square(), dense)
    return torch.sqrt(_sum(weights * (x - wh).square(), dense) / norm_sq.clamp_min(torch.finfo(x.dtype).tiny))


def weighted_residual(X: Tensor, W: Tensor, H: Tensor, weights: Tensor, support: Support | None = None) -> Tensor:
    """The residual :func:`weighted_hals_update_` works on: ``weights * (X - WH)`` (dense,
    (m, n) or (B, m, n)), or ``X - WH`` on the support's entries (|Omega|,)."""
    if support is None:
        residual = torch.addmm(X, W, H, alpha=-1) if W.dim() == 2 else X - W @ H
        return residual.mul_(weights)
    return support.values - wh_on_support(W, H, support.rows, support.cols, support.crow)


@_chunked
def weighted_scale(X: Tensor, W: Tensor, H: Tensor, weights: Tensor, support: Support | None = None) -> Tensor:
    r"""The s minimising :math:`\sum w (X - s\,WH)^2`: :math:`\sum w X\, WH / \sum w (WH)^2`
    (1 where that is not positive); 0-dim, or (B, 1, 1) for dense factors of a batch."""
    dense = support is None
    x, wh = _reconstruction(X, W, H, support)
    numerator = _sum(weights * x * wh, dense)
    denominator = _sum(weights * wh.square(), dense)
    scale = numerator / denominator.clamp_min(torch.finfo(wh.dtype).tiny)
    scale = torch.where(scale > 0, scale, 1.0)
    return scale.reshape(scale.shape + (1, 1)) if scale.dim() else scale


def _new_row(old: Tensor, numerator: Tensor, denominator: Tensor, l1: float, l2: float) -> Tensor:
    value = (numerator + old * denominator - l1) / (denominator + l2)
    return torch.where(denominator > 0, value.clamp_min(0), old)


def weighted_hals_update_(
    F: Tensor,
    G: Tensor,
    residual: Tensor,
    weights: Tensor,
    *,
    gather: Tensor | None = None,
    scatter: Tensor | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
) -> Tensor:
    r"""One weighted HALS sweep over the r rows of F (in place), for :math:`X \approx G^T F`.

    For the H update F = H (r, n), G = W^T (r, m); for the W update F = W^T (r, m), G = H
    (r, n) and the dense residual and weights transposed. The residual is updated in place
    with each row, so that the sweep is exact coordinate descent on the weighted objective.

    Parameters
    ----------
    F : Tensor, shape (r, n_f) or (B, r, n_f)
        The factor updated, row by row.
    G : Tensor, shape (r, n_g) or (B, r, n_g)
        The fixed factor.
    residual : Tensor
        Dense: ``weights * (X - G^T F)`` of shape (n_g, n_f) (or (B, n_g, n_f)); on a support:
        ``X - G^T F`` at its entries (|Omega|,) (:func:`weighted_residual`).
    weights : Tensor
        Dense (n_g, n_f), or (|Omega|,) on the support.
    gather, scatter : Tensor of int64, shape (|Omega|,), optional
        On a support: each entry's index into G's columns and into F's columns (rows and
        columns of X for the H update, columns and rows for the W update).
    l1, l2 : float
        The penalties of F.
    """
    if gather is None:
        denominators = G.square() @ weights  # (.., r, n_f): sum_i w_ij G_ki^2, for every row at once
        for k in range(F.shape[-2]):
            g = G[..., k, :]
            numerator = (g.unsqueeze(-2) @ residual).squeeze(-2)
            new = _new_row(F[..., k, :], numerator, denominators[..., k, :], l1, l2)
            change = new - F[..., k, :]
            F[..., k, :] = new
            residual.sub_(weights * (g.unsqueeze(-1) * change.unsqueeze(-2)))
        return F
    size = F.shape[-1]
    for k in range(F.shape[-2]):
        g = G[k].index_select(0, gather)
        weighted_g = weights * g
        numerator = F.new_zeros(size).index_add_(0, scatter, weighted_g * residual)
        denominator = F.new_zeros(size).index_add_(0, scatter, weighted_g * g)
        new = _new_row(F[k], numerator, denominator, l1, l2)
        change = new - F[k]
        F[k] = new
        residual.sub_(g * change.index_select(0, scatter))
    return F


@_chunked
def weighted_mu_ratio_terms(
    X: Tensor,
    W: Tensor,
    H: Tensor,
    weights: Tensor,
    beta: float,
    support: Support | None = None,
    X_t: Tensor | None = None,
    perm_t: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Numerator :math:`W^T[w \circ X \circ (WH)^{\beta-2}]` and denominator
    :math:`W^T[w \circ (WH)^{\beta-1}]` of the weighted MU of H (both (r, n), or (B, r, n)).

    Dense X and weights (m, n); or, with ``support``, the observed entries of the CSR
    pattern X (its values unused) with ``weights`` in CSR order, and ``X_t``/``perm_t``
    for the fast products (see :func:`torchnmf_l1.kernels.sparse_pattern_wt`).
    """
    dense = support is None
    x, wh = _reconstruction(X, W, H, support)
    wh = _floored(wh, dense)
    if beta == 2.0:
        numerator_values, denominator_values = weights * x, weights * wh
    elif beta == 1.0:
        numerator_values, denominator_values = weights * x / wh, weights
    else:
        numerator_values, denominator_values = weights * x * wh ** (beta - 2.0), weights * wh ** (beta - 1.0)
    if dense:
        Wt = W.mT
        return Wt @ numerator_values, Wt @ denominator_values
    return (
        sparse_pattern_wt(W, X, numerator_values, X_t, perm_t),
        sparse_pattern_wt(W, X, denominator_values, X_t, perm_t),
    )


def weighted_row_statistics(X: Tensor, weights: Tensor, H: Tensor) -> tuple[Tensor, Tensor]:
    r"""The sufficient statistics of the weighted W update, sums over the columns j of X:
    :math:`G_i = \sum_j w_{ij} h_j h_j^T` (m, r, r) and :math:`b_i = \sum_j w_{ij} X_{ij} h_j` (m, r).

    Row i of W minimises :math:`\tfrac12 w_i^T G_i w_i - b_i^T w_i` (+ penalties): the W update
    of weighted HALS needs only these, so they can be summed over column blocks (streaming)
    or over processes (data-parallel). Cost O(m n r^2); the (rows x r x n) temporary is
    built a few rows at a time. X (m, n) is 0 where the weight is 0.
    """
    m, r = X.shape[0], H.shape[0]
    b = (weights * X) @ H.mT
    G = H.new_empty(m, r, r)
    step = max(1, _STATISTICS_ELEMENTS // max(1, r * H.shape[1]))
    for start in range(0, m, step):
        stop = min(m, start + step)
        torch.matmul(weights[start:stop, None, :] * H, H.mT, out=G[start:stop])
    return G, b


def row_gram_nnls_sweep_(W: Tensor, G: Tensor, b: Tensor, *, l1: float = 0.0, l2: float = 0.0) -> Tensor:
    r"""One coordinate sweep over the columns of W (m, r), in place, every row i on its own
    quadratic :math:`\tfrac12 w_i^T G_i w_i - b_i^T w_i + \lambda_1 \mathbf 1^T w_i + \tfrac{\lambda_2}{2}\|w_i\|^2`,
    :math:`w_i \ge 0` (G (m, r, r), b (m, r) from :func:`weighted_row_statistics`).

    Column k: :math:`W_{ik} \leftarrow \max(0, W_{ik} + (b_{ik} - \lambda_1 - (G_i w_i)_k - \lambda_2 W_{ik}) / (G_{ikk} + \lambda_2))`,
    the exact minimiser in that coordinate: the W update of weighted HALS, iterate for iterate; a
    row with :math:`G_{ikk} = 0` (no weight through :math:`H_k`) keeps its value.
    """
    for k in range(W.shape[1]):
        diagonal = G[:, k, k]
        gradient = (G[:, k, :] * W).sum(dim=1) - b[:, k] + l1 + l2 * W[:, k]
        value = (W[:, k] - gradient / (diagonal + l2)).clamp_min(0)
        W[:, k] = torch.where(diagonal > 0, value, W[:, k])
    return W
