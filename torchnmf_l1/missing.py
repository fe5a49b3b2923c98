r"""Missing entries and entry weights: validation and the two layouts the weighted solvers use.

:func:`prepare_weighted` turns ``X`` with a ``mask`` (True = observed), ``weights`` (>= 0)
and NaN entries (missing) into

* the **dense** layout when X, the mask and the weights are all dense: X with the missing
  entries set to 0 and a dense weight matrix, 0 where missing (cost per iteration O(mnr),
  whatever the share observed);
* the **support** layout when any of them is sparse: the observed entries only, as a CSR
  matrix that stores the observed zeros of X, and their weights in the same CSR order (cost
  O(|Omega| r); no m x n tensor is built, unless the user gave a dense mask or weights).

A mask of all True, no NaN and no weights (or weights of all ones) is no weighting: the fit is
then the unweighted one, iterate for iterate.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from .checks import check_entries
from .data import Data, _drop_stored_zeros, _is_scipy_sparse, _to_torch, check_dtype, floating_dtype, prepare_data
from .exceptions import warn_user
from .kernels.products import is_sparse

__all__ = ["prepare_weighted", "prepare_cp_weights", "warn_empty", "MissingEntriesWarning"]


class MissingEntriesWarning(UserWarning):
    """A row or a column of X has no observed entry: its factor row keeps its start."""


def _csr(rows: Tensor, cols: Tensor, values: Tensor, shape) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        crow = torch.ops.aten._convert_indices_from_coo_to_csr(rows, shape[0])
        return torch.sparse_csr_tensor(crow, cols, values, tuple(shape), device=values.device, check_invariants=False)


def _linear_entries(T: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Sorted linear indices (row * n + col) and values of the stored entries of sparse T."""
    coo = T.to_sparse_coo().coalesce() if T.layout != torch.sparse_coo else T.coalesce()
    index = coo.indices()
    return index[0] * n + index[1], coo.values()


def _as_tensor(value, name: str, shape, device, data_name: str = "X") -> Tensor:
    if value is None:
        return None
    if _is_scipy_sparse(value):
        coo = value.tocoo()
        coo.sum_duplicates()
        index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        values = torch.from_numpy(np.asarray(coo.data))
        value = torch.sparse_coo_tensor(index, values, coo.shape).coalesce()
    elif not isinstance(value, Tensor):
        try:
            value = torch.from_numpy(np.ascontiguousarray(np.asarray(value)))
        except Exception as exc:  # noqa: BLE001 - re-raised with a clear message
            raise TypeError(f"{name} must be an array, a scipy.sparse matrix or a tensor, got {type(value).__name__}") from exc
    if value.is_complex():
        raise TypeError(f"{name} must be real, got dtype {value.dtype}")
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have {data_name}'s shape {tuple(shape)}, got {tuple(value.shape)}")
    if value.layout not in (torch.strided, torch.sparse_coo, torch.sparse_csr, torch.sparse_csc):
        raise TypeError(f"{name} has unsupported layout {value.layout}")
    return value.to(device)


def _check_weight_values(values: Tensor, name: str) -> None:
    if not values.is_floating_point() and values.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        raise TypeError(f"{name} must be numeric, got dtype {values.dtype}")
    check_entries(values, name)


def _check_mask(mask: Tensor) -> None:
    values = mask.values() if is_sparse(mask) else mask
    if values.dtype != torch.bool:
        raise TypeError(f"mask must be boolean (True = observed), got dtype {values.dtype}")


def warn_empty(counts_rows: Tensor, counts_cols) -> None:
    """A :class:`MissingEntriesWarning` when a row or a column has no observed entry
    (``counts_cols``: the counts per column, or the number of empty columns)."""
    empty_rows = int((counts_rows == 0).sum())
    empty_cols = counts_cols if isinstance(counts_cols, int) else int((counts_cols == 0).sum())
    if empty_rows or empty_cols:
        warn_user(
            f"{empty_rows} rows and {empty_cols} columns of X have no observed entry (mask, weights or NaN); "
            "their rows of W and columns of H keep their start values",
            MissingEntriesWarning,
        )


def _check_observed_values(x: Tensor, positive: bool) -> None:
    low, _ = check_entries(x, "X (its observed entries)")
    if positive and x.numel() and low == 0:
        raise ValueError("X contains zeros at observed entries, which this loss does not allow")


def prepare_weighted(
    X, mask=None, weights=None, *, device=None, dtype=None, positive: bool = False, layout: str = "auto",
    allow_batch: bool = False,
) -> tuple[Data, Data | None, Data]:
    """Validate X, ``mask``, ``weights`` (and NaN entries of a dense X) for a weighted fit.

    Parameters
    ----------
    X : array-like or sparse, shape (m, n)
        One matrix; NaN entries of a dense X are missing.
    mask : bool array-like or sparse, shape (m, n), optional
        True (a stored True entry, for a sparse mask) = observed.
    weights : array-like or sparse, shape (m, n), optional
        Nonnegative; a sparse matrix gives the observed entries (its stored entries) and their
        weights; a weight of 0 is a missing entry.
    positive : bool
        The loss needs X > 0 where observed (beta <= 0).
    layout : {"auto", "support"}
        ``"auto"``: dense when X, mask and weights are all dense, else the support layout;
        ``"support"``: always the observed entries only (the L1 solver's layout).
    allow_batch : bool
        Without mask and weights, a batch of matrices goes to :func:`prepare_data` as is.

    Returns
    -------
    data : Data
        Dense X (missing entries 0), or the CSR matrix of the observed entries (observed zeros stored).
    weights : Data or None
        The weights in the same layout (CSR order for the support layout); None when
        nothing is missing and no weight differs from 1.
    init_data : Data
        What to initialise the factors from: dense X with the missing entries set to the mean
        of the observed ones; in the support layout the observed entries divided by the share observed.

    Raises
    ------
    TypeError
        A mask that is not boolean, weights that are not numeric, a batch of matrices.
    ValueError
        A mask or weights of another shape, negative, NaN or infinite weights, no observed
        entry, infinite or negative observed entries of X.
    """
    dtype = check_dtype(dtype) or floating_dtype(X)
    if isinstance(X, (list, tuple)) or (hasattr(X, "ndim") and X.ndim != 2):
        if mask is None and weights is None:  # not one matrix: prepare_data's own checks and messages
            data = prepare_data(X, device=device, dtype=dtype, allow_zeros=not positive, allow_batch=allow_batch)
            return data, None, data
        shape = getattr(X, "shape", None)
        raise ValueError(
            "mask=, weights= and NaN entries need one matrix X (m x n); "
            f"got {'a list' if isinstance(X, (list, tuple)) else f'shape {tuple(shape)}'}: fit each matrix on its own"
        )
    T = _to_torch(X, "X", device, dtype)
    if T.dim() != 2:
        raise ValueError(f"X must be 2-D (m x n), got shape {tuple(T.shape)}")
    m, n = T.shape
    if m == 0 or n == 0:
        raise ValueError(f"X is empty: shape {(m, n)}")
    # NaN propagates through a sum: one read of X, no m x n temporary, unless X has NaN
    has_nan = not is_sparse(T) and T.is_floating_point() and bool(torch.isnan(T.sum()))
    nan = torch.isnan(T) if has_nan else None
    if mask is None and weights is None and nan is None:
        data = prepare_data(T, dtype=dtype, allow_zeros=not positive)
        return data, None, data
    mask = _as_tensor(mask, "mask", (m, n), T.device)
    weights = _as_tensor(weights, "weights", (m, n), T.device)
    if mask is not None:
        _check_mask(mask)
    if weights is not None:
        _check_weight_values(_linear_entries(weights, n)[1] if is_sparse(weights) else weights, "weights")
    if is_sparse(T) and bool(torch.isnan(T.values()).any()):
        raise ValueError("sparse X contains NaN values; give the missing entries through mask= or weights=")
    if layout not in ("auto", "support"):
        raise ValueError(f"layout must be 'auto' or 'support', got {layout!r}")
    dense_inputs = not (is_sparse(T) or (mask is not None and is_sparse(mask)) or (weights is not None and is_sparse(weights)))
    if dense_inputs:
        w = torch.ones_like(T) if weights is None else weights.to(dtype)
        if mask is not None:
            w = torch.where(mask, w, 0.0)
        if nan is not None:
            w = torch.where(nan, 0.0, w)
        observed = w > 0
        count = int(observed.sum())
        if count == 0:
            raise ValueError("no entry of X is observed (mask, weights and NaN entries leave none)")
        T = torch.where(observed, T, 0.0)
        _check_observed_values(T[observed], positive)
        if count == m * n and bool((w == 1).all()):
            data = prepare_data(T, dtype=dtype, allow_zeros=not positive)
            return data, None, data
        if layout == "auto":
            warn_empty(observed.sum(dim=1), observed.sum(dim=0))
            mean = T.sum() / count
            init = Data.from_tensor(torch.where(observed, T, mean).contiguous())
            return Data.from_tensor(T.contiguous()), Data.from_tensor(w.contiguous()), init
        weights, mask, nan = w, None, None  # to the support layout from the combined dense weights
    # the support layout: linear indices of the observed entries, sorted (CSR order)
    if weights is not None:
        if is_sparse(weights):
            linear, w = _linear_entries(weights, n)
        else:
            linear = torch.nonzero(weights.reshape(-1)).squeeze(1)
            w = weights.reshape(-1)[linear]
        keep = w > 0
        linear, w = linear[keep], w[keep].to(dtype)
    else:
        linear, w = None, None
    if mask is not None:
        if is_sparse(mask):
            mask_linear, mask_values = _linear_entries(mask, n)
            mask_linear = mask_linear[mask_values]
        else:
            mask_linear = torch.nonzero(mask.reshape(-1)).squeeze(1)
        if linear is None:
            linear = mask_linear
        else:
            keep = torch.isin(linear, mask_linear)
            linear, w = linear[keep], w[keep]
    if w is None:
        w = torch.ones(linear.numel(), dtype=dtype, device=T.device)
    if is_sparse(T):
        x_linear, x_values = _linear_entries(T, n)
        if x_linear.numel():
            position = torch.searchsorted(x_linear, linear).clamp_max(x_linear.numel() - 1)
            x = torch.where(x_linear[position] == linear, x_values[position], 0.0)
        else:
            x = torch.zeros_like(w)
    else:
        x = T.reshape(-1)[linear]
        keep = ~torch.isnan(x)
        linear, w, x = linear[keep], w[keep], x[keep]
    if linear.numel() == 0:
        raise ValueError("no entry of X is observed (mask, weights and NaN entries leave none)")
    _check_observed_values(x, positive)
    rows, cols = linear // n, linear % n
    warn_empty(torch.bincount(rows, minlength=m), torch.bincount(cols, minlength=n))
    data = Data.from_tensor(_csr(rows, cols, x.to(dtype).contiguous(), (m, n)))
    weight_data = Data.from_tensor(_csr(rows, cols, w.contiguous(), (m, n)))
    share = linear.numel() / (m * n)
    init_matrix = _drop_stored_zeros(_csr(rows, cols, (x / share).to(dtype), (m, n)))
    if init_matrix.values().numel() == 0:
        raise ValueError("every observed entry of X is 0: there is nothing to factorize")
    return data, weight_data, Data.from_tensor(init_matrix)


def prepare_cp_weights(weights, T: Tensor, mask: Tensor | None) -> Tensor:
    """Entry weights of a CP fit: dense, T's shape, finite, >= 0, 0 where ``mask`` is False.

    Raises ``TypeError`` (not numeric, sparse) or ``ValueError`` (another shape, negative, NaN
    or infinite weights, no entry left with a positive weight)."""
    if _is_scipy_sparse(weights) or (isinstance(weights, Tensor) and is_sparse(weights)):
        raise TypeError("weights of a CP fit must be dense, like T")
    w = _as_tensor(weights, "weights", tuple(T.shape), T.device, data_name="T")
    _check_weight_values(w, "weights")
    w = w.to(T.dtype)
    if mask is not None:
        w = torch.where(mask, w, 0.0)
    if not bool((w > 0).any()):
        raise ValueError("no entry of T has a positive weight (weights and mask leave none)")
    return w
