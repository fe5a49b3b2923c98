"""Validation of the tensors given to the package's public functions, in one place.

The models convert their data through :func:`torchnmf_l1.data.prepare_data`; the
functions that take plain tensors (``h2nmf_clustering``, ``ksparse_nnls``, the
distributed solver's factors, the NNLS layer, the blocks of a streamed matrix) check them
here, with the package's messages: a ``TypeError`` for the wrong kind of object (not a
tensor or array, sparse where dense is needed, complex, boolean), a ``ValueError`` for
the wrong values (shape, empty, NaN or infinite entries, negative entries, the meta
device, which holds no values). This module imports nothing from the package, so the
kernels can use it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["dense_tensor", "check_entries", "same_dtype_and_device"]


def _kind(dtype) -> str:
    if isinstance(dtype, torch.dtype):
        if dtype.is_complex:
            return "c"
        if dtype == torch.bool:
            return "b"
        return "f" if dtype.is_floating_point else "i"
    return np.dtype(dtype).kind


def check_entries(values: Tensor, name: str, *, nonnegative: bool = True) -> tuple[float, float]:
    """Raise ``ValueError`` naming ``name`` if ``values`` has NaN, infinite or (with
    ``nonnegative``) negative entries; one read from the device (of the minimum and the
    maximum, which NaN propagates to: no temporary of the size of ``values``).

    Returns the minimum and the maximum read (``(0.0, 0.0)`` for no entries)."""
    if values.numel() == 0:
        return 0.0, 0.0
    low, high = (float(v) for v in torch.stack(torch.aminmax(values)).tolist())
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int((~torch.isfinite(values)).sum())
        raise ValueError(f"{name} contains NaN or infinite values ({bad} entries)")
    if nonnegative and low < 0:
        raise ValueError(f"{name} has negative entries ({int((values < 0).sum())}, minimum {low:.6g}); {name} must be >= 0")
    return low, high


def dense_tensor(
    value,
    name: str,
    *,
    ndim: int | tuple[int, ...] = 2,
    dtype: torch.dtype | None = None,
    device=None,
    nonnegative: bool = True,
    allow_empty: bool = False,
    check_values: bool = True,
) -> Tensor:
    """``value`` as a dense floating tensor, validated; see the module docstring.

    Parameters
    ----------
    value : Tensor or array-like
    name : str
        How messages call it (``"X"``, ``"W"``).
    ndim : int or tuple of int
        The allowed numbers of dimensions.
    dtype : torch.dtype, optional
        Convert to it; by default a float32/float64 tensor keeps its dtype, float16 and
        bfloat16 become float32 and integers ``torch.get_default_dtype()``.
    device : optional
        Move to it; by default a tensor stays where it is, an array goes to the CPU.
    nonnegative, allow_empty, check_values :
        What is refused: negative entries, a zero dimension, and (``check_values``) NaN,
        infinite or negative entries at all (one host read).
    """
    if not isinstance(value, Tensor):
        if hasattr(value, "tocsr"):  # scipy.sparse
            raise TypeError(f"{name} must be dense, got a scipy.sparse matrix")
        if value is None or isinstance(value, (str, bytes, dict)) or not (isinstance(value, np.ndarray) or hasattr(value, "__array__")
                                                                          or isinstance(value, (list, tuple))):
            raise TypeError(f"{name} must be a torch tensor or a numpy array, got {type(value).__name__}")
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}: {exc}") from exc
        if array.dtype.kind not in "biufc":
            raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(array)) if array.dtype.kind != "b" else torch.from_numpy(array.copy())
    if value.layout != torch.strided:
        raise TypeError(f"{name} must be a dense tensor, got layout {value.layout}")
    kind = _kind(value.dtype)
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {value.dtype}; it must be real")
    if kind == "b":
        raise TypeError(f"{name} has boolean dtype; convert it to a floating dtype first")
    if value.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds no values; give a tensor with data")
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if value.dim() not in allowed:
        expect = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name} must be {expect}, got a {value.dim()}-D input of shape {tuple(value.shape)}")
    if not allow_empty and value.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(value.shape)}")
    if dtype is None:
        if value.dtype in (torch.float32, torch.float64):
            dtype = value.dtype
        elif value.dtype in (torch.float16, torch.bfloat16):
            dtype = torch.float32
        else:
            dtype = torch.get_default_dtype()
    value = value.to(device=device if device is not None else value.device, dtype=dtype)
    if check_values:
        check_entries(value, name, nonnegative=nonnegative)
    return value


def same_dtype_and_device(tensors: dict[str, Tensor]) -> None:
    """Raise ``TypeError`` (dtypes) or ``ValueError`` (devices) unless the tensors agree."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.dtype != first.dtype:
            raise TypeError(f"{first_name} and {name} must share a dtype, got {first.dtype} and {t.dtype}")
        if t.device != first.device:
            raise ValueError(f"{first_name} is on {first.device} but {name} is on {t.device}; move them to one device")
