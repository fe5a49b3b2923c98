"""Validation and conversion of user data into the tensors the solvers work on.

Every public entry point passes its data through :func:`prepare_data`, which accepts
numpy arrays, scipy.sparse matrices and torch dense or sparse tensors (one matrix, a
3-D stack of B matrices, or a list of B matrices), and raises a ``TypeError`` /
``ValueError`` that names what was wrong and the value received. Every tensor it builds
is allocated on the target device (never on the default device).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from .checks import check_entries
from .kernels.products import Support, is_sparse, sparse_values, support_indices

__all__ = ["Data", "prepare_data", "prepare_dictionary", "prepare_tensor", "check_dtype", "check_factor", "floating_dtype", "block_diagonal"]

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


def floating_dtype(X) -> torch.dtype:
    """The dtype a fit of X works in by default: X's own float32/float64, float32 for
    float16/bfloat16, ``torch.get_default_dtype()`` for integer data (as scikit-learn and
    tensorly keep the input's floating dtype)."""
    if isinstance(X, (list, tuple)) and X:
        X = X[0]
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, torch.dtype):
        if dtype in _FLOAT_DTYPES:
            return dtype
        return torch.float32 if dtype in (torch.float16, torch.bfloat16) else torch.get_default_dtype()
    if dtype is not None:
        kind = np.dtype(dtype).kind
        if kind == "f":
            return torch.float64 if np.dtype(dtype).itemsize >= 8 else torch.float32
    return torch.get_default_dtype()


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


def _to_torch(X, name: str, device, dtype: torch.dtype) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        if isinstance(X, Tensor):
            if X.device.type == "meta":
                raise ValueError(f"{name} is on the meta device, which holds no values; give a tensor with data")
            if X.is_complex():
                _source_dtype_check("c", name, str(X.dtype))
            if X.dtype == torch.bool:
                _source_dtype_check("b", name, str(X.dtype))
            if not (X.is_floating_point() or X.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
                _source_dtype_check("?", name, str(X.dtype))
            if X.layout == torch.sparse_coo:
                X = X.coalesce().to_sparse_csr()
            elif X.layout == torch.sparse_csc:
                X = X.to_sparse_coo().coalesce().to_sparse_csr()
            elif X.layout not in (torch.strided, torch.sparse_csr):
                raise TypeError(f"{name} has unsupported layout {X.layout}")
            return X.to(device=device if device is not None else X.device, dtype=dtype)
        target = torch.device(device) if device is not None else torch.device("cpu")
        if _is_scipy_sparse(X):
            _source_dtype_check(X.dtype.kind, name, str(X.dtype))
            if X.ndim != 2:
                raise ValueError(f"{name} must be 2-D (m x n), got shape {X.shape}")
            csr = X.tocsr(copy=True)
            csr.sum_duplicates()
            return torch.sparse_csr_tensor(
                torch.from_numpy(csr.indptr.astype(np.int64)),
                torch.from_numpy(csr.indices.astype(np.int64)),
                torch.from_numpy(np.asarray(csr.data)).to(dtype),
                size=csr.shape,
                device="cpu",
                check_invariants=True,  # user data: validate the index structure once
            ).to(target)
        if isinstance(X, np.ndarray) or hasattr(X, "__array__"):
            arr = np.asarray(X)
            _source_dtype_check(arr.dtype.kind, name, str(arr.dtype))
            return torch.from_numpy(np.ascontiguousarray(arr)).to(device=target, dtype=dtype)
    raise TypeError(f"{name} must be a numpy array, a scipy.sparse matrix or a torch tensor, got {_describe(X)}")


def _drop_stored_zeros(X: Tensor) -> Tensor:
    values = X.values()
    if bool((values != 0).all()):
        return X
    rows, cols = support_indices(X)
    keep = values != 0
    coo = torch.sparse_coo_tensor(
        torch.stack([rows[keep], cols[keep]]), values[keep], X.shape, check_invariants=False, device=X.device
    )
    return coo.coalesce().to_sparse_csr()


@dataclass(frozen=True, eq=False)
class Data:
    """Validated data X with what the solvers reuse at every iteration.

    Attributes
    ----------
    X : Tensor
        Dense (strided) X of shape (m, n), or (B, m, n) for a batch of B problems; or a
        sparse CSR tensor, float32 or float64, X >= 0, finite, with no stored zeros: one
        m x n problem, or the block-diagonal (B m x B n) matrix of a batch.
    X_t : Tensor or None
        ``X^T`` as a sparse CSR tensor (sparse X only), so that both ``X H^T`` and
        ``W^T X`` use the row-major fast path.
    support : Support or None
        Rows, columns and values of sparse X in CSR order (and the problem offsets of a batch).
    perm_t : Tensor or None
        Permutation from X's CSR order to X^T's CSR order: ``X_t.values() == values[perm_t]``.
    batch : int or None
        B for a batch of problems, None for one.
    """

    X: Tensor
    X_t: Tensor | None = None
    support: Support | None = None
    perm_t: Tensor | None = None
    batch: int | None = None

    @classmethod
    def from_tensor(cls, X: Tensor, *, batch: int | None = None) -> "Data":
        """Wrap a validated dense tensor, or a sparse one (block-diagonal with ``batch`` blocks)."""
        if not is_sparse(X):
            return cls(X, batch=X.shape[0] if X.dim() == 3 else None)
        X = X if X.layout == torch.sparse_csr else X.to_sparse_csr()
        rows, cols = support_indices(X)
        order = torch.arange(rows.numel(), device=X.device)
        perm_t = torch.sparse_coo_tensor(
            torch.stack([cols, rows]), order, (X.shape[1], X.shape[0]), check_invariants=False, device=X.device
        )  # indices built here, in range by construction
        perm_t = perm_t.coalesce().values()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            X_t = torch.sparse_csr_tensor(
                torch.ops.aten._convert_indices_from_coo_to_csr(cols[perm_t], X.shape[1]),
                rows[perm_t],
                X.values()[perm_t],
                (X.shape[1], X.shape[0]),
                device=X.device,
                check_invariants=False,  # a permutation of a valid CSR: valid by construction
            )
        offsets = None
        if batch is not None:
            m = X.shape[0] // batch
            offsets = X.crow_indices()[::m].to(torch.int64)
        return cls(X, X_t, Support(rows, cols, X.values(), offsets, X.crow_indices().to(torch.int64)), perm_t, batch)

    @property
    def sparse(self) -> bool:
        return self.X_t is not None

    @property
    def shape(self) -> tuple[int, int]:
        """(m, n) of each problem."""
        if self.sparse and self.batch is not None:
            return self.X.shape[0] // self.batch, self.X.shape[1] // self.batch
        return tuple(self.X.shape[-2:])

    @property
    def rows(self) -> Tensor | None:
        return self.support.rows if self.sparse else None

    @property
    def cols(self) -> Tensor | None:
        return self.support.cols if self.sparse else None

    @property
    def values(self) -> Tensor | None:
        return self.support.values if self.sparse else None

    @property
    def offsets(self) -> Tensor | None:
        """Problem offsets of a sparse batch into the CSR entries (None otherwise)."""
        return self.support.offsets if self.sparse else None

    @property
    def nnz(self) -> int:
        return int(self.values.numel()) if self.sparse else int(torch.count_nonzero(self.X))

    @property
    def device(self) -> torch.device:
        return self.X.device

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype

    def sum(self) -> Tensor:
        """Sum of X: 0-dim, or (B,) per problem of a batch."""
        if self.sparse:
            from .kernels.products import problem_sums

            return problem_sums(self.values, self.offsets)
        return self.X.sum(dim=(-2, -1))

    def problem(self, b: int) -> "Data":
        """Problem ``b`` of a batch, as single-problem data (a view for dense X)."""
        if self.batch is None:
            raise ValueError("this data holds one problem, not a batch")
        if not self.sparse:
            return Data.from_tensor(self.X[b])
        m, n = self.shape
        crow = self.X.crow_indices()
        start, stop = crow[b * m], crow[(b + 1) * m]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            block = torch.sparse_csr_tensor(
                crow[b * m : (b + 1) * m + 1] - start, self.X.col_indices()[start:stop] - b * n,
                self.X.values()[start:stop], (m, n), device=self.device, check_invariants=False,
            )
        return Data.from_tensor(block)

    @cached_property
    def T(self) -> "Data":
        """The transposed data X^T, sharing storage (used to update W as the H of X^T)."""
        if not self.sparse:
            return Data(self.X.mT, batch=self.batch)
        inverse = torch.empty_like(self.perm_t)
        inverse[self.perm_t] = torch.arange(self.perm_t.numel(), device=self.perm_t.device)
        offsets = None
        if self.batch is not None:
            n = self.X.shape[1] // self.batch
            offsets = self.X_t.crow_indices()[::n].to(torch.int64)
        support = Support(self.cols[self.perm_t], self.rows[self.perm_t], self.X_t.values(), offsets,
                          self.X_t.crow_indices().to(torch.int64))
        return Data(self.X_t, self.X, support, inverse, self.batch)


def block_diagonal(blocks: list[Tensor]) -> Tensor:
    """One CSR matrix with the CSR matrices ``blocks`` (all m x n) on its diagonal."""
    m, n = blocks[0].shape
    device = blocks[0].device
    crows, cols, values = [blocks[0].crow_indices().new_zeros(1)], [], []
    offset = 0
    for b, block in enumerate(blocks):
        crows.append(block.crow_indices()[1:] + offset)
        cols.append(block.col_indices() + b * n)
        values.append(block.values())
        offset += block.values().numel()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(
            torch.cat(crows), torch.cat(cols), torch.cat(values), (len(blocks) * m, len(blocks) * n),
            device=device, check_invariants=False,
        )


def _validate(T: Tensor, name: str, allow_zeros: bool) -> None:
    values = sparse_values(T) if is_sparse(T) else T
    if values.numel() == 0:
        return
    low, _ = check_entries(values, name, nonnegative=False)  # one pass, one read of two numbers
    if low < 0:
        raise ValueError(f"{name} has negative entries (minimum {low:.6g}); NMF needs {name} >= 0")
    if not allow_zeros and (values.numel() < T.shape[-2] * T.shape[-1] * (T.shape[0] if T.dim() == 3 else 1) or low == 0):
        raise ValueError(f"{name} contains zeros, which this loss does not allow")


def prepare_data(
    X,
    *,
    device=None,
    dtype=None,
    name: str = "X",
    allow_zeros: bool = True,
    allow_batch: bool = False,
) -> Data:
    """Validate X and convert it to a :class:`Data` on ``device`` with ``dtype``.

    Parameters
    ----------
    X : numpy.ndarray, scipy.sparse matrix, torch.Tensor (strided, COO, CSR or CSC), or a list of them
        Nonnegative, finite, non-empty data: one m x n matrix; with ``allow_batch``, a 3-D
        dense (B, m, n) stack or a list of B matrices of the same shape (dense ones are
        stacked, sparse ones become one block-diagonal CSR matrix).
    device : torch.device or str, optional
        Target device; by default a torch tensor stays where it is and other inputs go to the CPU.
    dtype : torch.dtype, optional
        float32 or float64; by default :func:`floating_dtype` of X.

    Raises
    ------
    TypeError
        Unsupported container, boolean or complex dtype.
    ValueError
        Wrong number of dimensions, empty, NaN or infinite entries, negative entries,
        batch members of different shapes or devices.
    """
    dtype = check_dtype(dtype) or floating_dtype(X)
    if isinstance(X, (list, tuple)) and X and all(isinstance(x, (Tensor, np.ndarray)) or _is_scipy_sparse(x) for x in X):
        if not allow_batch:
            raise TypeError(f"{name} must be one matrix here, got a {type(X).__name__} of {len(X)} items")
        if len(X) == 0:
            raise ValueError(f"{name} is an empty list: a batch needs at least one matrix")
        devices = {x.device for x in X if isinstance(x, Tensor)}
        if len(devices) > 1:
            raise ValueError(f"the matrices of {name} are on different devices {sorted(map(str, devices))}; move them to one")
        items = [_to_torch(x, f"{name}[{i}]", device, dtype) for i, x in enumerate(X)]
        shapes = {tuple(t.shape) for t in items}
        if len(shapes) != 1 or any(t.dim() != 2 for t in items):
            raise ValueError(f"the matrices of {name} must all be 2-D of one shape, got shapes {[tuple(t.shape) for t in items]}")
        sparse = {is_sparse(t) for t in items}
        if len(sparse) != 1:
            raise TypeError(f"the matrices of {name} must be all dense or all sparse, got a mix")
        for i, t in enumerate(items):
            if t.shape[0] == 0 or t.shape[1] == 0:
                raise ValueError(f"{name}[{i}] is empty: shape {tuple(t.shape)}")
            _validate(t, f"{name}[{i}]", allow_zeros)
        if sparse.pop():
            blocks = [_drop_stored_zeros(t) for t in items]
            return Data.from_tensor(block_diagonal(blocks), batch=len(blocks))
        return Data.from_tensor(torch.stack(items))
    T = _to_torch(X, name, device, dtype)
    if T.dim() == 3 and allow_batch and not is_sparse(T):
        if min(T.shape) == 0:
            raise ValueError(f"{name} is empty: shape {tuple(T.shape)}")
        _validate(T, name, allow_zeros)
        return Data.from_tensor(T.contiguous())
    if T.dim() != 2:
        expect = "2-D (m x n), 3-D (B x m x n) or a list of matrices" if allow_batch else "2-D (m x n)"
        raise ValueError(f"{name} must be {expect}, got a {T.dim()}-D input of shape {tuple(T.shape)}")
    if T.shape[0] == 0 or T.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(T.shape)}")
    _validate(T, name, allow_zeros)
    if is_sparse(T):
        T = _drop_stored_zeros(T)
    return Data.from_tensor(T)


def check_factor(F, name: str, shape: tuple[int, ...], *, device, dtype) -> Tensor:
    """Validate a user-given factor (custom initialisation, fixed factor) and return a copy.

    Raises ``TypeError``/``ValueError`` naming the factor for a wrong type, shape,
    negative or non-finite entries.
    """
    if isinstance(F, Tensor) and F.layout != torch.strided:
        raise TypeError(f"{name} must be a dense tensor, got layout {F.layout}")
    T = prepare_data(F, device=device, dtype=dtype, name=name, allow_batch=len(shape) == 3).X
    if tuple(T.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(T.shape)}")
    return T.clone()


def prepare_dictionary(D, name: str, device, dtype) -> Tensor:
    """Validate a dictionary (p x d, dense, real, finite, nonnegative, no zero atom) and convert it."""
    if not isinstance(D, Tensor):
        if _is_scipy_sparse(D):
            raise TypeError(f"{name} must be dense, got a scipy.sparse matrix")
        try:
            D = torch.from_numpy(np.ascontiguousarray(np.asarray(D)))
        except Exception as exc:  # noqa: BLE001 - re-raised with a clear message
            raise TypeError(f"{name} must be a tensor or an array, got {type(D).__name__}") from exc
    if D.layout != torch.strided:
        raise TypeError(f"{name} must be dense, got layout {D.layout}")
    if D.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix (p x d), got shape {tuple(D.shape)}")
    if D.is_complex() or D.dtype == torch.bool:
        raise TypeError(f"{name} must be real, got dtype {D.dtype}")
    if D.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(D.shape)}")
    D = D.to(device=device if device is not None else D.device, dtype=dtype or floating_dtype(D))
    if not bool(torch.isfinite(D).all()):
        raise ValueError(f"{name} has non-finite entries")
    minimum = float(D.min())
    if minimum < 0:
        raise ValueError(f"{name} must be nonnegative, got a minimum entry of {minimum:g}")
    zero = D.sum(dim=0) == 0
    if bool(zero.any()):
        raise ValueError(f"{name} has an all-zero column (atom {int(zero.nonzero()[0])})")
    return D


def prepare_dictionaries(dictionary, counts, rank: int, distinct: bool, device, dtype) -> tuple[Tensor, tuple | None]:
    """One dictionary (p x d), or a list of them stacked side by side, validated with ``counts``.

    Returns the stacked D and the sizes of its dictionaries (``groups``; None for one);
    ``counts`` (one int or (lo, hi) per dictionary) is checked against ``rank`` now.
    """
    from .kernels.dictionary import normalize_counts

    if not isinstance(dictionary, (list, tuple)):
        if counts is not None:
            raise ValueError("counts is only used with several dictionaries (pass dictionary=[D1, D2, ...])")
        return prepare_dictionary(dictionary, "dictionary", device, dtype), None
    parts = [prepare_dictionary(P, f"dictionary[{i}]", device, dtype) for i, P in enumerate(dictionary)]
    heights = [P.shape[0] for P in parts]
    if len(set(heights)) != 1:
        raise ValueError(f"the dictionaries must have the same height p, got heights {heights}")
    groups = tuple(P.shape[1] for P in parts)
    normalize_counts(groups, counts, rank, distinct)
    return torch.cat([P.to(parts[0].dtype) for P in parts], dim=1), groups


def prepare_tensor(T, mask=None, *, device=None, dtype=None, batch: bool = False, name: str = "T") -> tuple[Tensor, Tensor | None]:
    """Validate a data tensor of order >= 2 (NaN or ``mask == False`` = missing) and convert it.

    ``batch=True``: T is a stack (B, I_1, ..., I_N) of B tensors of order N >= 2. Missing
    entries are set to 0 in the returned tensor; the mask (bool, True = observed) is
    returned as given, built from the NaNs, or None.

    Raises
    ------
    TypeError
        Not a tensor or array, sparse, complex or boolean, a mask that is not boolean.
    ValueError
        Too few modes, empty, a mask of another shape or with nothing observed, infinite
        or negative entries.
    """
    if hasattr(T, "tensor") and not isinstance(T, (Tensor, np.ndarray)):  # a tensorly Bunch
        T = T.tensor
    if not isinstance(T, Tensor):
        if _is_scipy_sparse(T):
            raise TypeError(f"{name} must be a dense tensor, got a scipy.sparse matrix")
        try:
            T = torch.from_numpy(np.ascontiguousarray(np.asarray(T)))
        except Exception as exc:  # noqa: BLE001 - re-raised with a clear message
            raise TypeError(f"{name} must be a tensor or an array, got {type(T).__name__}") from exc
    if T.layout != torch.strided:
        raise TypeError(f"{name} must be a dense tensor, got layout {T.layout}")
    least = 3 if batch else 2
    if T.ndim < least:
        what = f"{least} dimensions (a batch of tensors of at least 2 modes)" if batch else "2 modes"
        raise ValueError(f"{name} must have at least {what}, got shape {tuple(T.shape)}")
    if T.is_complex() or T.dtype == torch.bool:
        raise TypeError(f"{name} must be real, got dtype {T.dtype}")
    if T.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(T.shape)}")
    T = T.to(device=device if device is not None else T.device, dtype=dtype or floating_dtype(T))
    if mask is None and bool(torch.isnan(T).any()):
        mask = ~torch.isnan(T)  # NaN marks a missing entry
    if mask is not None:
        if not isinstance(mask, Tensor):
            mask = torch.from_numpy(np.asarray(mask))
        mask = mask.to(device=T.device)
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a boolean tensor (True = observed), got dtype {mask.dtype}")
        if mask.shape != T.shape:
            raise ValueError(f"mask must have {name}'s shape {tuple(T.shape)}, got {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("mask has no observed entry")
        T = torch.where(mask, T, 0.0)
    if not bool(torch.isfinite(T).all()):
        raise ValueError(f"{name} has non-finite entries (mark missing entries with NaN or a mask)")
    minimum = float(T.min())
    if minimum < 0:
        raise ValueError(f"{name} must be nonnegative, got a minimum entry of {minimum:g}")
    return T, mask
