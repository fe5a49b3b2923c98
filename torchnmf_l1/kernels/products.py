"""Matrix products of the factorization, for dense and torch.sparse (CSR) data, single or batched.

Every product that touches X goes through these functions so that a sparse X stays
sparse: the cost is O(nnz(X) r), never O(m n r), and no dense m x n tensor is allocated.

Layouts of a batch of B problems (factors W of shape (B, m, r), H of shape (B, r, n)):

* dense X of shape (B, m, n): one batched GEMM per product;
* dense X of shape (m, n) shared by every problem (replicates): broadcast;
* sparse X as one block-diagonal CSR matrix (B m x B n): problem b owns rows
  b m .. (b+1) m - 1 and columns b n .. (b+1) n - 1, and a product is one sparse GEMM
  with the factors stacked, e.g. ``W^T X`` = ``(X^T W_stacked)^T`` reshaped.

A single problem is the same with W (m, r), H (r, n).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "Support",
    "relative_floor",
    "per_entry",
    "is_sparse",
    "gram",
    "x_ht",
    "wt_x",
    "support_indices",
    "sparse_values",
    "wh_on_support",
    "frobenius_norm_sq",
    "data_sum",
    "problem_norm_sq",
    "problem_sums",
    "chunk_size",
    "records_grad",
]

_SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc)

# Upper bound on the number of elements of the (nnz x r) temporaries built by
# ``wh_on_support`` (and of the dense blocks of other kernels); larger work is chunked.
_CHUNK_ELEMENTS = 1 << 22
# Elements of each (chunk x r) temporary of a gathered ``wh_on_support`` chunk. Measured on
# reviews (758,635 entries, 2 threads): at r = 20, chunks of 64k entries (1.3M elements) are
# 2.6x faster than 210k-entry ones (4M elements, out of the caches) and 2.5x faster than
# 4k-entry ones (per-chunk dispatch); at r = 4 the best is 262k entries (1M elements).
_GATHER_ELEMENTS = 1 << 20
# Columns of X per block of a dense ``W^T X`` when X has many more columns than rows.
_GEMM_COLUMNS = 1 << 16


class Support(NamedTuple):
    """The stored entries of a sparse X in CSR order: ``values[k] = X[rows[k], cols[k]]``.

    ``offsets`` (int64, B + 1) delimits the entries of each problem of a block-diagonal
    batch (the CSR order keeps a problem's entries contiguous); None for one problem.
    ``crow`` is X's CSR row pointer (length rows of X + 1) when the entries are in CSR
    order; with it, :func:`wh_on_support` is one sampled dense-dense product.
    """

    rows: Tensor
    cols: Tensor
    values: Tensor
    offsets: Tensor | None = None
    crow: Tensor | None = None


def records_grad(*tensors: Tensor) -> bool:
    """True when autograd records an operation on ``tensors``: a kernel may then not write
    into a temporary in place (``out=``, ``*_``), which autograd cannot differentiate."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def is_sparse(X: Tensor) -> bool:
    """True for a torch.sparse tensor (COO, CSR or CSC layout)."""
    return X.layout in _SPARSE_LAYOUTS


def chunk_size(total: int, width: int, budget: int = _CHUNK_ELEMENTS) -> int:
    """How many of ``total`` items of ``width`` elements each fit in ``budget`` elements (>= 1)."""
    return max(1, min(total, budget // max(width, 1)))


def gram(A: Tensor, transpose: bool = False) -> Tensor:
    """Gram matrix ``A^T A`` (``transpose=False``) or ``A A^T`` (``transpose=True``), batched over leading dims.

    ``gram(W)`` is W^T W (r x r) and ``gram(H, transpose=True)`` is H H^T (r x r).
    """
    return A @ A.mT if transpose else A.mT @ A


def _stacked(F: Tensor) -> Tensor:
    """(B, k, r) -> (B k, r): the factors of a block-diagonal batch, one above the other."""
    return F.reshape(-1, F.shape[-1])


def x_ht(X: Tensor, H: Tensor, X_t: Tensor | None = None) -> Tensor:
    """``X H^T`` (m x r, or B x m x r) for dense or sparse X and dense H (r x n, or B x r x n).

    ``X_t`` is unused (the CSR of X is already the fast row-major path); it keeps the
    signature symmetric with :func:`wt_x`.
    """
    if is_sparse(X):
        if H.dim() == 2:
            return torch.sparse.mm(X, H.mT.contiguous())
        B, r, n = H.shape
        out = torch.sparse.mm(X, _stacked(H.mT))  # (B m, r)
        return out.reshape(B, -1, r)
    return X @ H.mT


def wt_x(W: Tensor, X: Tensor, X_t: Tensor | None = None) -> Tensor:
    """``W^T X`` (r x n, or B x r x n) for dense W (m x r, or B x m x r) and dense or sparse X.

    Parameters
    ----------
    X_t : Tensor, optional
        A sparse copy of ``X^T`` in CSR layout; when given, the product is taken as
        ``(X^T W)^T`` from it, which is the fast row-major path on CPU and CUDA.
    """
    if is_sparse(X):
        Xt = X_t if X_t is not None else X.transpose(0, 1)
        if W.dim() == 2:
            return torch.sparse.mm(Xt, W.contiguous()).mT
        B, m, r = W.shape
        out = torch.sparse.mm(Xt, _stacked(W))  # (B n, r)
        return out.reshape(B, -1, r).mT
    n = X.shape[-1]
    if X.dim() == 2 and W.dim() == 2 and n >= 2 * _GEMM_COLUMNS and X.stride(-1) == 1:
        # a row-major m x n X with n >> m: the library GEMM runs this shape far off the
        # memory bound (200 x 1e6 float32, 2 threads: 181 ms whole, 90 ms in 64k-column blocks)
        Wt = W.mT
        if records_grad(W, X):
            return torch.cat([Wt @ X[:, s : s + _GEMM_COLUMNS] for s in range(0, n, _GEMM_COLUMNS)], dim=1)
        out = W.new_empty(W.shape[-1], n)  # the blocks written in place: no second r x n temporary
        for s in range(0, n, _GEMM_COLUMNS):
            torch.mm(Wt, X[:, s : s + _GEMM_COLUMNS], out=out[:, s : s + _GEMM_COLUMNS])
        return out
    return W.mT @ X


def support_indices(X: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column indices (both int64, length nnz) of the stored entries of sparse X.

    For CSR the entries come in row-major order; for COO in the order of the
    (coalesced) index tensor. :func:`sparse_values` returns values in the same order.
    """
    if X.layout == torch.sparse_csr:
        crow = X.crow_indices()
        counts = crow[1:] - crow[:-1]
        rows = torch.repeat_interleave(
            torch.arange(X.shape[0], device=X.device), counts, output_size=X.col_indices().numel()
        )
        return rows, X.col_indices().long()
    if X.layout == torch.sparse_csc:
        ccol = X.ccol_indices()
        counts = ccol[1:] - ccol[:-1]
        cols = torch.repeat_interleave(
            torch.arange(X.shape[1], device=X.device), counts, output_size=X.row_indices().numel()
        )
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


def wh_on_support(W: Tensor, H: Tensor, rows: Tensor, cols: Tensor, crow: Tensor | None = None) -> Tensor:
    """Entries ``(WH)[rows[k], cols[k]]`` for each k, without forming WH.

    Cost O(len(rows) r). With ``crow`` (the entries then in CSR order) it is one sampled
    dense-dense product (``torch.sparse.sampled_addmm``: a row of W is read once for all
    the entries of its row, no temporary but the output); without it, rows of W and H are
    gathered in chunks of about a million elements per temporary (``_GATHER_ELEMENTS``).

    Parameters
    ----------
    W : Tensor, shape (m, r) or (B, m, r)
    H : Tensor, shape (r, n) or (B, r, n)
    rows, cols : Tensor of int64, shape (nnz,)
        Indices into X, or into the block-diagonal X of a batch (rows < B m, cols < B n).
    crow : Tensor of int64, shape (m + 1,) or (B m + 1,), optional
        The CSR row pointer of these entries (e.g. :attr:`Support.crow`).
    """
    r = W.shape[-1]
    Wf = _stacked(W) if W.dim() == 3 else W
    Ht = _stacked(H.mT) if H.dim() == 3 else H.mT
    nnz = rows.shape[0]
    if crow is not None and W.device.type != "meta" and nnz:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            pattern = torch.sparse_csr_tensor(
                crow, cols, Wf.new_ones(()).expand(nnz), (Wf.shape[0], Ht.shape[0]), device=Wf.device,
                check_invariants=False,
            )  # indices of a validated X; only its pattern is read (beta = 0)
        return torch.sparse.sampled_addmm(pattern, Wf, Ht.contiguous().mT, beta=0.0).values()  # H column-major: 10 % faster
    chunk = chunk_size(nnz, r, _GATHER_ELEMENTS)
    if nnz <= chunk:
        return (Wf[rows] * Ht[cols]).sum(dim=1)
    out = Wf.new_empty(nnz)
    for start in range(0, nnz, chunk):
        stop = min(start + chunk, nnz)
        torch.sum(Wf[rows[start:stop]] * Ht[cols[start:stop]], dim=1, out=out[start:stop])
    return out


def problem_sums(values: Tensor, offsets: Tensor | None) -> Tensor:
    """Sum of ``values`` per problem (``offsets`` of a batch) as (B,), or in all as 0-dim."""
    if offsets is None:
        return values.sum()
    return torch.segment_reduce(values, "sum", offsets=offsets) if values.numel() else values.new_zeros(offsets.numel() - 1)


def relative_floor(values: Tensor, offsets: Tensor | None = None, dense_batch: bool = False) -> Tensor:
    """``eps * max(values)`` per problem (at least the dtype's ``tiny``): the lower bound that
    keeps a ratio or a negative power of nonnegative ``values`` (WH, a denominator) finite
    while scaling with them, so that ``fit(c * X)`` iterates as ``fit(X)`` for any c > 0.

    Returns a 0-dim tensor for one problem; (B, 1, 1) for a dense batch (``dense_batch``,
    ``values`` of shape (B, ., .)); (B,) for the entries of a sparse batch (``offsets``).
    """
    info = torch.finfo(values.dtype)
    if offsets is not None:
        top = torch.segment_reduce(values, "max", offsets=offsets, initial=0.0) if values.numel() else \
            values.new_zeros(offsets.numel() - 1)
    elif dense_batch:
        top = values.amax(dim=(-2, -1), keepdim=True)
    else:
        top = values.amax() if values.numel() else values.new_zeros(())
    return (info.eps * top).clamp_min(info.tiny)


def per_entry(per_problem: Tensor, offsets: Tensor | None, count: int) -> Tensor:
    """A per-problem value (B,) repeated over the ``count`` support entries of each problem
    (0-dim unchanged); ``output_size`` given, so that no count is read from the device."""
    if offsets is None or per_problem.dim() == 0:
        return per_problem
    return torch.repeat_interleave(per_problem, offsets.diff(), output_size=count)


def frobenius_norm_sq(X: Tensor) -> Tensor:
    """``||X||_F^2`` for dense or sparse X, as a 0-dim tensor."""
    values = sparse_values(X) if is_sparse(X) else X
    return (values * values).sum()


def problem_norm_sq(X: Tensor, offsets: Tensor | None = None) -> Tensor:
    """``||X||_F^2`` per problem: 0-dim, or (B,) for a batch (dense (B, m, n), or sparse with ``offsets``)."""
    if is_sparse(X):
        return problem_sums(sparse_values(X).square(), offsets)
    return torch.linalg.vector_norm(X, dim=(-2, -1)).square()


def data_sum(X: Tensor, offsets: Tensor | None = None) -> Tensor:
    """Sum of the entries of X: 0-dim, or (B,) for a batch (dense (B, m, n), or sparse with ``offsets``)."""
    if is_sparse(X):
        return problem_sums(sparse_values(X), offsets)
    return X.sum(dim=(-2, -1))
