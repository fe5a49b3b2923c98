"""Matrix products of the factorization, for dense and torch.sparse (COO, CSR) data.

Every product that touches X goes through these functions so that a sparse X
stays sparse: the cost is O(nnz(X) r), never O(m n r), and no dense m x n
tensor is allocated.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "is_sparse",
    "gram",
    "x_ht",
    "wt_x",
    "support_indices",
    "sparse_values",
    "wh_on_support",
    "frobenius_norm_sq",
    "data_sum",
]

_SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc)

# Upper bound on the number of elements of the (nnz x r) temporaries built by
# ``wh_on_support``; larger supports are processed in chunks.
_CHUNK_ELEMENTS = 1 << 24


def is_sparse(X: Tensor) -> bool:
    """True for a torch.sparse tensor (COO, CSR or CSC layout)."""
    return X.layout in _SPARSE_LAYOUTS


def gram(A: Tensor, transpose: bool = False) -> Tensor:
    """Gram matrix ``A^T A`` (``transpose=False``) or ``A A^T`` (``transpose=True``).

    ``gram(W)`` is W^T W (r x r) and ``gram(H, transpose=True)`` is H H^T (r x r).
    """
    return A @ A.transpose(0, 1) if transpose else A.transpose(0, 1) @ A


def x_ht(X: Tensor, H: Tensor) -> Tensor:
    """``X H^T`` (m x r) for dense or sparse X (m x n) and dense H (r x n)."""
    if is_sparse(X):
        return torch.sparse.mm(X, H.transpose(0, 1).contiguous())
    return X @ H.transpose(0, 1)


def wt_x(W: Tensor, X: Tensor, X_t: Tensor | None = None) -> Tensor:
    """``W^T X`` (r x n) for dense W (m x r) and dense or sparse X (m x n).

    Parameters
    ----------
    X_t : Tensor, optional
        A sparse copy of ``X^T`` in CSR layout; when given, the product is taken
        as ``(X^T W)^T`` from it, which is the fast row-major path on CPU and CUDA.
    """
    if is_sparse(X):
        Xt = X_t if X_t is not None else X.transpose(0, 1)
        return torch.sparse.mm(Xt, W.contiguous()).transpose(0, 1)
    return W.transpose(0, 1) @ X


def support_indices(X: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column indices (both int64, length nnz) of the stored entries of sparse X.

    For CSR the entries come in row-major order; for COO in the order of the
    (coalesced) index tensor. :func:`sparse_values` returns values in the same order.
    """
    if X.layout == torch.sparse_csr:
        crow = X.crow_indices()
        counts = crow[1:] - crow[:-1]
        rows = torch.repeat_interleave(torch.arange(X.shape[0], device=X.device), counts)
        return rows, X.col_indices().long()
    if X.layout == torch.sparse_csc:
        ccol = X.ccol_indices()
        counts = ccol[1:] - ccol[:-1]
        cols = torch.repeat_interleave(torch.arange(X.shape[1], device=X.device), counts)
        return X.row_indices().long(), cols
    if X.layout == torch.sparse_coo:
        idx = X.coalesce().indices() if not X.is_coalesced() else X.indices()
        return idx[0], idx[1]
    raise TypeError(f"support_indices expects a sparse tensor, got layout {X.layout}")


def sparse_values(X: Tensor) -> Tensor:
    """Stored values of sparse X, in the order of :func:`support_indices`."""
    if X.layout == torch.sparse_coo:
        return (X if X.is_coalesced() else X.coalesce()).values()
    return X.values()


def wh_on_support(W: Tensor, H: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Entries ``(WH)[rows[k], cols[k]]`` for each k, without forming WH.

    Cost O(len(rows) r); temporaries are bounded by chunking.

    Parameters
    ----------
    W : Tensor, shape (m, r)
    H : Tensor, shape (r, n)
    rows, cols : Tensor of int64, shape (nnz,)
    """
    r = W.shape[1]
    nnz = rows.shape[0]
    Ht = H.transpose(0, 1)
    chunk = max(1, _CHUNK_ELEMENTS // max(r, 1))
    if nnz <= chunk:
        return (W[rows] * Ht[cols]).sum(dim=1)
    out = W.new_empty(nnz)
    for start in range(0, nnz, chunk):
        stop = min(start + chunk, nnz)
        out[start:stop] = (W[rows[start:stop]] * Ht[cols[start:stop]]).sum(dim=1)
    return out


def frobenius_norm_sq(X: Tensor) -> Tensor:
    """``||X||_F^2`` for dense or sparse X, as a 0-dim tensor."""
    values = sparse_values(X) if is_sparse(X) else X
    return (values * values).sum()


def data_sum(X: Tensor) -> Tensor:
    """Sum of the entries of dense or sparse X, as a 0-dim tensor."""
    return sparse_values(X).sum() if is_sparse(X) else X.sum()
