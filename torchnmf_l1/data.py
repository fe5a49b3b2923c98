"""Validation and conversion of user data into the tensors the solvers work on.

Every public entry point passes its data through :func:`prepare_data`, which accepts
numpy arrays, scipy.sparse matrices and torch dense or sparse tensors, and raises a
``TypeError``/``ValueError`` that names what was wrong and the value received.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from .kernels.products import is_sparse, sparse_values, support_indices

__all__ = ["Data", "prepare_data", "check_dtype", "check_factor"]

_FLOAT_DTYPES = (torch.float32, torch.float64)


def check_dtype(dtype) -> torch.dtype | None:
    """Return ``dtype`` as a torch floating dtype (float32 or float64) or None."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, dtype)
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        dtype = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def _describe(X) -> str:
    return f"{type(X).__module__}.{type(X).__name__}"


def _is_scipy_sparse(X) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(X)


def _source_dtype_check(kind: str, name: str, dtype_str: str) -> None:
    if kind == "b":
        raise TypeError(f"{name} has boolean dtype ({dtype_str}); convert it to a floating dtype first")
    if kind == "c":
        raise TypeError(f"{name} has complex dtype ({dtype_str}); NMF needs real nonnegative data")
    if kind not in "iuf":
        raise TypeError(f"{name} has unsupported dtype {dtype_str}; expected a real numeric dtype")


def _target_dtype(source: torch.dtype, requested: torch.dtype | None) -> torch.dtype:
    if requested is not None:
        return requested
    if source in _FLOAT_DTYPES:
        return source
    return torch.get_default_dtype()


def _to_torch(X, name: str, device, dtype) -> Tensor:
    if isinstance(X, Tensor):
        if X.is_complex():
            _source_dtype_check("c", name, str(X.dtype))
        if X.dtype == torch.bool:
            _source_dtype_check("b", name, str(X.dtype))
        if not (X.is_floating_point() or not X.dtype.is_signed or X.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)):
            _source_dtype_check("?", name, str(X.dtype))
        target = _target_dtype(X.dtype, dtype)
        if X.layout == torch.sparse_coo:
            X = X.coalesce().to_sparse_csr()
        elif X.layout == torch.sparse_csc:
            X = X.to_sparse_coo().coalesce().to_sparse_csr()
        elif X.layout not in (torch.strided, torch.sparse_csr):
            raise TypeError(f"{name} has unsupported layout {X.layout}")
        return X.to(device=device if device is not None else X.device, dtype=target)
    if _is_scipy_sparse(X):
        _source_dtype_check(X.dtype.kind, name, str(X.dtype))
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (m x n), got shape {X.shape}")
        csr = X.tocsr(copy=True)
        csr.sum_duplicates()
        source = torch.from_numpy(np.zeros(0, dtype=csr.dtype)).dtype if csr.dtype.kind == "f" else torch.int64
        target = _target_dtype(source if source in _FLOAT_DTYPES else torch.int64, dtype)
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(np.asarray(csr.data)).to(target),
            size=csr.shape,
            device=device,
            check_invariants=True,  # user data: validate the index structure once
        )
    if isinstance(X, np.ndarray) or hasattr(X, "__array__"):
        arr = np.asarray(X)
        _source_dtype_check(arr.dtype.kind, name, str(arr.dtype))
        source = torch.from_numpy(np.zeros(0, dtype=arr.dtype)).dtype if arr.dtype.kind == "f" else torch.int64
        target = _target_dtype(source, dtype)
        return torch.as_tensor(np.ascontiguousarray(arr)).to(device=device, dtype=target)
    raise TypeError(
        f"{name} must be a numpy array, a scipy.sparse matrix or a torch tensor, got {_describe(X)}"
    )


def _drop_stored_zeros(X: Tensor) -> Tensor:
    values = X.values()
    if bool((values != 0).all()):
        return X
    rows, cols = support_indices(X)
    keep = values != 0
    coo = torch.sparse_coo_tensor(
        torch.stack([rows[keep], cols[keep]]), values[keep], X.shape, check_invariants=False
    )
    return coo.coalesce().to_sparse_csr()


@dataclass(frozen=True, eq=False)
class Data:
    """Validated data X (m x n) with what the solvers reuse at every iteration.

    Attributes
    ----------
    X : Tensor
        Dense (strided) or sparse CSR tensor, float32 or float64, X >= 0, finite,
        with no stored zeros when sparse.
    X_t : Tensor or None
        ``X^T`` as a sparse CSR tensor (sparse X only), so that both ``X H^T`` and
        ``W^T X`` use the row-major fast path.
    rows, cols, values : Tensor or None
        Support of sparse X in CSR order (``values[k] = X[rows[k], cols[k]]``).
    perm_t : Tensor or None
        Permutation from X's CSR order to X^T's CSR order: ``X_t.values() == values[perm_t]``,
        so a sparse matrix with X's pattern and other values ``v`` is transposed as
        ``torch.sparse_csr_tensor(X_t.crow_indices(), X_t.col_indices(), v[perm_t])``.
    """

    X: Tensor
    X_t: Tensor | None = None
    rows: Tensor | None = None
    cols: Tensor | None = None
    values: Tensor | None = None
    perm_t: Tensor | None = None

    @classmethod
    def from_tensor(cls, X: Tensor) -> "Data":
        if not is_sparse(X):
            return cls(X)
        X = X if X.layout == torch.sparse_csr else X.to_sparse_csr()
        rows, cols = support_indices(X)
        order = torch.arange(rows.numel(), device=X.device)
        perm_t = torch.sparse_coo_tensor(
            torch.stack([cols, rows]), order, (X.shape[1], X.shape[0]), check_invariants=False
        )  # indices built here, in range by construction
        perm_t = perm_t.coalesce().values()
        X_t = torch.sparse_csr_tensor(
            torch.ops.aten._convert_indices_from_coo_to_csr(cols[perm_t], X.shape[1]),
            rows[perm_t],
            X.values()[perm_t],
            (X.shape[1], X.shape[0]),
            check_invariants=False,  # a permutation of a valid CSR: valid by construction
        )
        return cls(X, X_t, rows, cols, X.values(), perm_t)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.X.shape)

    @property
    def sparse(self) -> bool:
        return self.X_t is not None

    @property
    def support(self):
        """``(rows, cols, values)`` for sparse X, None for dense X."""
        return (self.rows, self.cols, self.values) if self.sparse else None

    @property
    def nnz(self) -> int:
        return int(self.values.numel()) if self.sparse else int(torch.count_nonzero(self.X))

    @property
    def device(self) -> torch.device:
        return self.X.device

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    @cached_property
    def T(self) -> "Data":
        """The transposed data X^T, sharing storage (used to update W as the H of X^T)."""
        if not self.sparse:
            return Data(self.X.transpose(0, 1))
        inverse = torch.empty_like(self.perm_t)
        inverse[self.perm_t] = torch.arange(self.perm_t.numel(), device=self.perm_t.device)
        return Data(self.X_t, self.X, self.cols[self.perm_t], self.rows[self.perm_t], self.X_t.values(), inverse)


def prepare_data(
    X,
    *,
    device=None,
    dtype=None,
    name: str = "X",
    allow_zeros: bool = True,
) -> Data:
    """Validate X and convert it to a :class:`Data` on ``device`` with ``dtype``.

    Parameters
    ----------
    X : numpy.ndarray, scipy.sparse matrix, or torch.Tensor (strided, COO, CSR or CSC)
        Nonnegative, finite, 2-D, non-empty data.
    device : torch.device or str, optional
        Target device; by default a torch tensor stays where it is and other inputs go to the CPU.
    dtype : torch.dtype, optional
        float32 or float64; by default floating inputs keep their dtype (float16 and
        bfloat16 become float32) and integer inputs take ``torch.get_default_dtype()``.

    Raises
    ------
    TypeError
        Unsupported container, boolean or complex dtype.
    ValueError
        Not 2-D, empty, NaN or infinite entries, negative entries.
    """
    dtype = check_dtype(dtype)
    if isinstance(X, Tensor) and X.dtype in (torch.float16, torch.bfloat16) and dtype is None:
        dtype = torch.float32
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        T = _to_torch(X, name, device, dtype)
        if T.dim() != 2:
            raise ValueError(f"{name} must be 2-D (m x n), got a {T.dim()}-D input of shape {tuple(T.shape)}")
        if T.shape[0] == 0 or T.shape[1] == 0:
            raise ValueError(f"{name} is empty: shape {tuple(T.shape)}")
        values = sparse_values(T) if is_sparse(T) else T
        bad = int((~torch.isfinite(values)).sum())
        if bad:
            raise ValueError(f"{name} contains NaN or infinite values ({bad} entries)")
        if values.numel() and bool((values < 0).any()):
            raise ValueError(
                f"{name} has negative entries (minimum {float(values.min()):.6g}); NMF needs {name} >= 0"
            )
        if not allow_zeros and (values.numel() < T.shape[0] * T.shape[1] or bool((values == 0).any())):
            raise ValueError(f"{name} contains zeros, which this loss does not allow")
        if is_sparse(T):
            T = _drop_stored_zeros(T)
        return Data.from_tensor(T)


def check_factor(F, name: str, shape: tuple[int, int], *, device, dtype) -> Tensor:
    """Validate a user-given factor (custom initialisation, fixed factor) and return a copy.

    Raises ``TypeError``/``ValueError`` naming the factor for a wrong type, shape,
    negative or non-finite entries.
    """
    if isinstance(F, Tensor) and F.layout != torch.strided:
        raise TypeError(f"{name} must be a dense tensor, got layout {F.layout}")
    T = prepare_data(F, device=device, dtype=dtype, name=name).X
    if tuple(T.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(T.shape)}")
    return T.clone()
